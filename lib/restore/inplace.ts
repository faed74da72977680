import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellable, type Cancellation } from '../common/abort.js';
import { finalFiles, storedMap, type Chain, type ChainState } from '../chain/chain.js';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import { isDurable, isHeap } from '../common/names.js';
import { native } from '../native/core.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../common/pool.js';
import type { OperationOptions } from '../common/progress.js';
import { fsyncPath as fsyncDir, pathExists as exists, writeFileDurably } from '../common/staging.js';

/**
 * Delta restore: bring an existing data directory (a stale standby, a
 * disaster-recovery copy, yesterday's restore) to the state of a backup by
 * rewriting only what differs, ending byte-identical to a plain restore.
 *
 * Crash safety: our marker is written first and `catalog.bin` removed (and
 * `wal.log`, which would replay onto the result): until the backup's
 * `catalog.bin` is put back, last and durably, the directory is not a
 * database to the engine (it refuses a directory without a catalog) nor to
 * us (backups need a catalog). A killed delta restore is simply run again:
 * the marker tells it the directory is ours to finish.
 */
export const DELTA_MARKER = '.powdb-delta-restore';
/** Our own names inside the destination while a delta restore runs (temporary copies, fetched segments). */
export const TEMP_PREFIX = `${DELTA_MARKER}.`;

/** What a delta restore compared, rewrote and removed. */
export interface DeltaSummary {
  filesCompared: number;
  filesRewritten: number;
  filesRemoved: number;
  pagesCompared: bigint;
  pagesRewritten: bigint;
  bytesWritten: bigint;
  /** From a repository: the chunk bytes fetched (only what is rewritten). */
  bytesFetched: bigint;
}

/** What bringing one file up to date did. */
export interface FileUpdate {
  rewritten: boolean;
  pagesCompared: bigint;
  pagesRewritten: bigint;
  bytesWritten: bigint;
  bytesFetched?: bigint;
}

/** A file of the result: how to bring the destination's copy (maybe absent) to it. */
export interface InPlaceFile {
  name: string;
  len: bigint;
  /** `path` is the destination's file; `temp` a free name beside it for a whole rewrite. */
  update(path: string, temp: string, token?: number): Promise<FileUpdate>;
}

/** True when `dest` is absent or an empty directory: a plain restore does. */
export async function isFreshDestination(dest: string): Promise<boolean> {
  try {
    const st = await lstat(dest);
    return st.isDirectory() && (await readdir(dest)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/** Refuses what a delta restore must not touch, before anything is written. */
async function checkDestination(dest: string, force: boolean): Promise<void> {
  const st = await lstat(dest);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new BackupError('ERR_UNSAFE_PATH', `delta restore destination ${dest} is not a directory`);
  }
  if (await exists(join(dest, '.powdb-sync'))) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `${dest} is sync-enabled: its retained history would not match the restored data; restore into an empty directory instead`,
    );
  }
  const ours = await exists(join(dest, DELTA_MARKER));
  if (!ours && !force && !(await exists(join(dest, 'catalog.bin')))) {
    throw new BackupError(
      'ERR_NOT_A_DATA_DIR',
      `${dest} has no catalog.bin: not a PowDB data directory (--force restores into it anyway)`,
    );
  }
}

/** A whole file: rewritten (into `temp`, then renamed over it) when its BLAKE3 differs. */
export function wholeFile(
  name: string,
  len: bigint,
  blake3Hex: string,
  build: (temp: string, token?: number) => Promise<void>,
): InPlaceFile {
  return {
    name,
    len,
    async update(path, temp, token) {
      const same = (await exists(path)) && (await native.hashFile(path, token)).blake3Hex === blake3Hex;
      if (same) return { rewritten: false, pagesCompared: 0n, pagesRewritten: 0n, bytesWritten: 0n };
      await rm(temp, { force: true });
      await build(temp, token);
      await rename(temp, path);
      return { rewritten: true, pagesCompared: 0n, pagesRewritten: 0n, bytesWritten: len };
    },
  };
}

/**
 * Delta restore of `files` into `dest`: every file but `catalog.bin`
 * brought up to date (in parallel), durable files the result lacks removed,
 * `wal` written if given, then `catalog.bin`, then the marker removed.
 */
export async function restoreInPlace(
  dest: string,
  files: InPlaceFile[],
  options: OperationOptions & { force?: boolean; wal?: (path: string) => Promise<void> },
): Promise<DeltaSummary> {
  await checkDestination(dest, Boolean(options.force));
  const lock = await native.acquireLock(dest);
  try {
    return await cancellable(options.signal, (cancel) => run(dest, files, options, cancel));
  } finally {
    await native.releaseLock(lock);
  }
}

async function run(
  dest: string,
  files: InPlaceFile[],
  options: OperationOptions & { wal?: (path: string) => Promise<void> },
  cancel: Cancellation,
): Promise<DeltaSummary> {
  const marker = join(dest, DELTA_MARKER);
  if (!(await exists(marker))) {
    await writeFileDurably(marker, `${JSON.stringify({ pid: process.pid, started: new Date().toISOString() })}\n`);
  }
  await fsyncDir(dest);
  crashPoint('delta-marked');
  // From here the directory is not a database until catalog.bin is back.
  await rm(join(dest, 'catalog.bin'), { force: true });
  await rm(join(dest, 'wal.log'), { force: true });
  // A killed run may have left its temporary copies: each file starts afresh.
  for (const name of await readdir(dest)) {
    if (name.startsWith(TEMP_PREFIX)) await rm(join(dest, name), { recursive: true, force: true });
  }
  await fsyncDir(dest);
  crashPoint('delta-catalog-removed');

  const summary: DeltaSummary = {
    filesCompared: 0,
    filesRewritten: 0,
    filesRemoved: 0,
    pagesCompared: 0n,
    pagesRewritten: 0n,
    bytesWritten: 0n,
    bytesFetched: 0n,
  };
  const add = (u: FileUpdate) => {
    summary.filesCompared += 1;
    if (u.rewritten) summary.filesRewritten += 1;
    summary.pagesCompared += u.pagesCompared;
    summary.pagesRewritten += u.pagesRewritten;
    summary.bytesWritten += u.bytesWritten;
    summary.bytesFetched += u.bytesFetched ?? 0n;
  };
  const catalog = files.find((f) => f.name === 'catalog.bin');
  if (!catalog) throw new BackupError('ERR_INTEGRITY', 'the backup has no catalog.bin (backup is corrupt)');
  const rest = files.filter((f) => f !== catalog);
  await mapLimit(rest, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
    cancel.check();
    add(await f.update(join(dest, f.name), join(dest, `${TEMP_PREFIX}${f.name}`), cancel.token));
    crashPoint('file-done');
  });

  const wanted = new Set(files.map((f) => f.name));
  for (const name of await readdir(dest)) {
    const stale = (isDurable(name) && !wanted.has(name)) || (name.startsWith(TEMP_PREFIX) && name !== DELTA_MARKER);
    if (stale) {
      await rm(join(dest, name), { force: true, recursive: name.startsWith(TEMP_PREFIX) });
      if (!name.startsWith(TEMP_PREFIX)) summary.filesRemoved += 1;
    }
  }
  if (options.wal) await options.wal(join(dest, 'wal.log'));
  await fsyncDir(dest);
  crashPoint('delta-files-done');

  cancel.check(); // the last moment an abort leaves the directory to a rerun
  add(await catalog.update(join(dest, 'catalog.bin'), join(dest, `${TEMP_PREFIX}catalog.bin`), cancel.token));
  await fsyncDir(dest);
  crashPoint('delta-catalog-written');
  await rm(marker);
  await fsyncDir(dest);
  return summary;
}

/** The files of a chain's result, each brought up to date from its layers. */
export function chainFiles(chain: Chain, state: ChainState): InPlaceFile[] {
  return finalFiles(chain, state).map(([name, layers]) => {
    const len = state.lengths.get(name) ?? 0n;
    const map = storedMap(state, name);
    const newest = layers.at(-1)!;
    const paged = isHeap(name) && (map !== undefined || layers.some((l) => l.pageIndices !== undefined));
    if (paged) {
      return {
        name,
        len,
        async update(path: string, _temp: string, token?: number): Promise<FileUpdate> {
          const r = await native.patchHeap(path, layers, map, token);
          return { rewritten: r.pagesRewritten > 0n, ...r };
        },
      };
    }
    // Whole files, and heaps only ever shipped whole: their newest copy is the result.
    return wholeFile(name, len, newest.blake3Hex, async (temp, token) => {
      await native.restoreFile(temp, layers, map, token);
    });
  });
}
