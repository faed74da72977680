// Install step (and `npm rebuild powdb-backup`): nothing to do when the addon
// loads (a local build, the bundled prebuild or the platform package);
// otherwise build it from source with cargo, with a clear message when cargo
// is missing. POWDB_BACKUP_BUILD_FROM_SOURCE=1 forces a source build.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..');
const built = join(root, 'build', 'Release', 'powdb_backup.node');
const libName = `libpowdb_backup.${process.platform === 'darwin' ? 'dylib' : 'so'}`;

async function addonLoads() {
  const loader = join(root, 'dist', 'lib', 'native', 'loader.js');
  try {
    if (existsSync(loader)) (await import(pathToFileURL(loader).href)).loadAddon(root);
    else createRequire(import.meta.url)(built); // a checkout before its first TypeScript build
    return true;
  } catch {
    return false;
  }
}

/**
 * In a checkout: the workspace's own build, through napi-rs, which also
 * writes build/Release/index.d.ts (the boundary's types, checked against
 * lib/native/binding.d.ts by the lint gate). Returns the built addon.
 */
function buildInCheckout() {
  execFileSync(process.execPath, [join(root, 'scripts', 'prebuild-node-gyp.mjs')], { cwd: root, stdio: 'inherit' });
  return built;
}

/** In an installed package: the crate alone, in a scratch workspace (no parent workspace can interfere). */
function buildInstalled() {
  const scratch = mkdtempSync(join(tmpdir(), 'powdb-backup-build-'));
  cpSync(join(root, 'crate'), join(scratch, 'crate'), { recursive: true });
  if (existsSync(join(root, 'Cargo.lock'))) copyFileSync(join(root, 'Cargo.lock'), join(scratch, 'Cargo.lock'));
  writeFileSync(
    join(scratch, 'Cargo.toml'),
    '[workspace]\nresolver = "2"\nmembers = ["crate"]\n\n[profile.release]\nlto = true\ncodegen-units = 1\nstrip = "symbols"\n',
  );
  execFileSync('cargo', ['build', '--release'], { cwd: scratch, stdio: 'inherit' });
  const out = join(scratch, 'built.node');
  copyFileSync(join(scratch, 'target', 'release', libName), out);
  return out;
}

if (process.env.POWDB_BACKUP_BUILD_FROM_SOURCE !== '1' && (await addonLoads())) process.exit(0);

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.error(
    'powdb-backup: no prebuilt native addon fits this platform and cargo was not found.\n' +
      'Install Rust (https://rustup.rs), then run `npm rebuild powdb-backup`.',
  );
  process.exit(1);
}

console.error('powdb-backup: building the native addon from source with cargo (release)...');
const checkout = existsSync(join(root, 'Cargo.toml'));
const library = checkout ? buildInCheckout() : buildInstalled();
mkdirSync(dirname(built), { recursive: true });
if (library !== built) copyFileSync(library, built);
if (!checkout) rmSync(dirname(library), { recursive: true, force: true });
if (!(await addonLoads())) {
  console.error(`powdb-backup: built ${built}, but it does not load`);
  process.exit(1);
}
