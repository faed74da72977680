// Install step: nothing to do when a native binary already loads (a dev build
// or a bundled prebuild); otherwise build the addon from source with cargo.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build', 'Release', 'powdb_backup.node');

function loads(file) {
  try {
    createRequire(import.meta.url)(file);
    return true;
  } catch {
    return false;
  }
}

if (process.env.POWDB_BACKUP_BUILD_FROM_SOURCE !== '1' && loads(built)) {
  process.exit(0);
}

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  console.error(
    'powdb-backup: no prebuilt native binary fits this platform and cargo was not found.\n' +
      'Install Rust (https://rustup.rs) and run `npm rebuild powdb-backup`.',
  );
  process.exit(1);
}

console.error('powdb-backup: building the native addon from source with cargo (release)...');
execFileSync('cargo', ['build', '--release', '--manifest-path', join(root, 'crate', 'Cargo.toml')], {
  cwd: root,
  stdio: 'inherit',
});
const ext = process.platform === 'darwin' ? 'dylib' : 'so';
mkdirSync(dirname(built), { recursive: true });
copyFileSync(join(root, 'target', 'release', `libpowdb_backup.${ext}`), built);
if (!loads(built)) {
  console.error(`powdb-backup: built ${built} but it does not load`);
  process.exit(1);
}
