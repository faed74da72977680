// A real PowDB server for the online-backup tests: `powdb-server` and
// `powdb-cli` 0.29.0, built from crates.io with `cargo install --locked` (the
// exact dependency versions the release was published with) into
// .tmp/tools/powdb, once. Node built-ins only.
//
// Built, not downloaded: PowDB publishes no binaries, only crates. The build
// compiles the server's whole dependency tree (tokio, rustls with aws-lc, whose
// C part needs cmake and a C compiler), so it takes minutes: about 4.5 minutes
// on 2 idle cores, more on a busy machine. Its target directory stays in
// .tmp/tools/powdb-target, so a version bump rebuilds only what changed.
//
// Also usable by hand:
//   node scripts/powdb-server.mjs     # install unless present, print the paths
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const POWDB_VERSION = '0.29.0';
const TOOLS = join(ROOT, '.tmp', 'tools');
const INSTALL_ROOT = join(TOOLS, 'powdb');
const TARGET_DIR = join(TOOLS, 'powdb-target');
const BIN = join(INSTALL_ROOT, 'bin');
const SERVER = join(BIN, 'powdb-server');
const CLI = join(BIN, 'powdb-cli');
// Written after both binaries are installed: a version bump here reinstalls.
const STAMP = join(INSTALL_ROOT, 'powdb.version');

const installed = () =>
  existsSync(SERVER) && existsSync(CLI) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === POWDB_VERSION;

let install;

/**
 * Installs powdb-server and powdb-cli 0.29.0 into .tmp/tools/powdb unless they
 * are there (minutes, once; under `nice -n 19`). Resolves to `{ server, cli }`,
 * their paths; rejects with cargo's output when the build fails.
 */
export function ensurePowdbServer() {
  if (installed()) return Promise.resolve({ server: SERVER, cli: CLI });
  install ??= build().finally(() => (install = undefined));
  return install;
}

async function build() {
  mkdirSync(TOOLS, { recursive: true });
  const args = [
    '-n',
    '19',
    'cargo',
    'install',
    '--locked',
    '--root',
    INSTALL_ROOT,
    `powdb-server@${POWDB_VERSION}`,
    `powdb-cli@${POWDB_VERSION}`,
  ];
  console.error(
    `[powdb] building powdb-server and powdb-cli ${POWDB_VERSION} with cargo install into .tmp/tools/powdb, once: ` +
      'PowDB ships crates, not binaries, and compiling the server (tokio, rustls, aws-lc in C) takes minutes ' +
      '(about 4.5 on 2 idle cores)...',
  );
  const started = Date.now();
  let output = '';
  const code = await new Promise((done) => {
    const child = spawn('nice', args, {
      env: { ...process.env, CARGO_TARGET_DIR: TARGET_DIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk) => (output = (output + chunk.toString()).slice(-64 * 1024));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const beat = setInterval(() => {
      const last = output.trimEnd().split('\n').pop()?.trim() ?? '';
      console.error(`[powdb] still building (${Math.round((Date.now() - started) / 1000)} s): ${last}`);
    }, 30_000);
    child.on('error', (e) => (output += `\n${e.message}`));
    child.on('close', (c) => {
      clearInterval(beat);
      done(c);
    });
  });
  if (code !== 0 || !existsSync(SERVER) || !existsSync(CLI)) {
    throw new Error(
      `cargo install powdb-server@${POWDB_VERSION} powdb-cli@${POWDB_VERSION} failed (exit ${code}); ` +
        `it needs cargo, network access to crates.io, cmake and a C compiler:\n${output}`,
    );
  }
  writeFileSync(STAMP, `${POWDB_VERSION}\n`);
  console.error(`[powdb] built in ${Math.round((Date.now() - started) / 1000)} s`);
  return { server: SERVER, cli: CLI };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const paths = await ensurePowdbServer();
  console.log(JSON.stringify(paths));
}
