// Finds and loads the native addon. Tried in order: an explicit override
// (POWDB_BACKUP_NATIVE names a .node file), a local dev build, the prebuild
// bundled in the package (prebuildify), the napi-rs platform package. When
// none loads, one error lists each place tried and why it failed.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = 'powdb-backup';
const BINARY = 'powdb_backup.node';

/** The package root: the nearest folder above this module whose package.json is ours. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === PACKAGE) return dir;
    if (dirname(dir) === dir) throw new Error(`${PACKAGE}: cannot find its package root above ${from}`);
  }
}

/** napi-rs's name for this platform, e.g. linux-x64-gnu or darwin-arm64. */
export function platformTriple(): string {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  return `linux-${process.arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

interface Candidate {
  what: string;
  /** Returns the file to load, or throws why there is none. */
  locate: () => string;
}

function candidates(root: string, require: NodeJS.Require): Candidate[] {
  const file = (path: string) => () => {
    if (!existsSync(path)) throw new Error(`${path} does not exist`);
    return path;
  };
  return [
    {
      what: 'POWDB_BACKUP_NATIVE (explicit override)',
      locate: () => {
        const path = process.env.POWDB_BACKUP_NATIVE;
        if (!path) throw new Error('not set');
        return file(path)();
      },
    },
    { what: 'local build (build/Release)', locate: file(join(root, 'build', 'Release', BINARY)) },
    {
      what: `bundled prebuild (prebuilds/${process.platform}-${process.arch})`,
      locate: () => (require('node-gyp-build') as { resolve: (dir: string) => string }).resolve(root),
    },
    {
      // A getter: platformTriple() asks for a process report (a few ms), needed only when the others fail.
      get what() {
        return `platform package @${PACKAGE}/native-${platformTriple()}`;
      },
      locate: () => require.resolve(`@${PACKAGE}/native-${platformTriple()}`),
    },
  ];
}

/** Loads the addon from the first place that works, or throws listing every attempt. */
export function loadAddon<T>(root = packageRoot()): T {
  const require = createRequire(join(root, 'package.json'));
  const failures: string[] = [];
  for (const candidate of candidates(root, require)) {
    try {
      return require(candidate.locate()) as T;
    } catch (err) {
      failures.push(`  - ${candidate.what}: ${String((err as Error).message).split('\n')[0]}`);
    }
  }
  throw new Error(
    `${PACKAGE}: could not load its native addon. Tried, in order:\n${failures.join('\n')}\n` +
      `Build it from source: install Rust (https://rustup.rs), then run \`npm rebuild ${PACKAGE}\` ` +
      `(POWDB_BACKUP_BUILD_FROM_SOURCE=1 forces a source build even when a prebuild loads).`,
  );
}
