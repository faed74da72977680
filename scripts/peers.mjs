// The backup tools users compare us with, for `npm run bench -- --part peers`:
// restic and Kopia built from the Go module proxy, rustic from the Rust crate
// registry, borg from PyPI (with Debian's headers it compiles against). Each
// is installed once into .tmp/tools/peers (under `nice -n 19`), and a tool
// that cannot be had is skipped with a one-line reason. Node built-ins only.
//
//   node scripts/peers.mjs     # install what is missing, print what is there
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './powdb-server.mjs';

const HOME = join(ROOT, '.tmp', 'tools', 'peers');
const BIN = join(HOME, 'bin');

/** Runs a command (niced), resolving to its output; rejects with the output's tail. */
function sh(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('nice', ['-n', '19', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    const keep = (c) => (out = (out + c).slice(-32 * 1024));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${out.slice(-2000)}`)),
    );
  });
}

const goEnv = () => ({ ...process.env, GOBIN: BIN, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' });

/** Each peer: its version, its binary, how to install it. */
export const PEERS = {
  restic: {
    version: '0.19.1',
    bin: join(BIN, 'restic'),
    install: () => sh('go', ['install', 'github.com/restic/restic/cmd/restic@v0.19.1'], { env: goEnv() }),
  },
  rustic: {
    version: '0.11.4',
    bin: join(BIN, 'rustic'),
    install: () =>
      sh('cargo', ['install', '--locked', '--root', HOME, 'rustic-rs@0.11.4'], {
        env: { ...process.env, CARGO_TARGET_DIR: join(HOME, 'rustic-target') },
      }),
  },
  kopia: {
    version: '0.22.3',
    bin: join(BIN, 'kopia'),
    async install() {
      // Kopia's main package is its module's root, which `go install` of a version does not build here.
      const info = JSON.parse(
        await sh('go', ['mod', 'download', '-json', 'github.com/kopia/kopia@v0.22.3'], { env: goEnv() }),
      );
      await sh('go', ['build', '-o', join(BIN, 'kopia'), '.'], { cwd: info.Dir, env: goEnv() });
    },
  },
  borg: {
    version: '1.4.5',
    bin: join(HOME, 'borg-venv', 'bin', 'borg'),
    async install() {
      const headers = ['libacl1-dev', 'liblz4-dev', 'libzstd-dev', 'libxxhash-dev', 'pkg-config', 'python3-venv'];
      await sh('apt-get', ['update']);
      await sh('apt-get', ['install', '-y', '--no-install-recommends', ...headers], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      await sh('python3', ['-m', 'venv', join(HOME, 'borg-venv')]);
      await sh(join(HOME, 'borg-venv', 'bin', 'pip'), ['install', '--quiet', 'borgbackup==1.4.5']);
    },
  },
};

const stampOf = (name) => join(HOME, `${name}.version`);
const installed = (name) =>
  existsSync(PEERS[name].bin) &&
  existsSync(stampOf(name)) &&
  readFileSync(stampOf(name), 'utf8').trim() === PEERS[name].version;

/** Installs `name` unless it is there; resolves to `{ name, version, bin }` or `{ name, skip: reason }`. */
export async function ensurePeer(name) {
  const peer = PEERS[name];
  if (!installed(name)) {
    mkdirSync(BIN, { recursive: true });
    console.error(`[peers] installing ${name} ${peer.version} into .tmp/tools/peers, once...`);
    const started = Date.now();
    try {
      await peer.install();
      if (!existsSync(peer.bin)) throw new Error(`no ${peer.bin} after the install`);
    } catch (err) {
      const why = String(err.message).trim().split('\n').filter(Boolean).at(-1);
      return { name, skip: `${name} ${peer.version} could not be installed: ${why}` };
    }
    writeFileSync(stampOf(name), peer.version);
    console.error(`[peers] ${name} ${peer.version} installed in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  return { name, version: peer.version, bin: peer.bin };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').at(-1))) {
  for (const name of Object.keys(PEERS)) console.log(JSON.stringify(await ensurePeer(name)));
}
