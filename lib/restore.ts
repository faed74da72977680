import { join } from 'node:path';
import { chainState, histories, readChain, storedMap, type Chain, type ChainState } from './chain.js';
import { CONTENTS_FILE } from './contents.js';
import { BackupError } from './errors.js';
import { cancellable, type Cancellation } from './abort.js';
import { crashPoint } from './crashpoint.js';
import { native, type RestoreLayer } from './native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './pool.js';
import { Progress, type OperationOptions } from './progress.js';
import { buildAtomically } from './staging.js';

/** Options of `restore` and `restoreChain`: concurrency, progress, abort signal. */
export type RestoreOptions = OperationOptions;

/** What a restore laid down, and the LSN the restored directory is at. */
export interface RestoreResult {
  dest: string;
  /** Files in the restored directory and their total size. */
  files: number;
  bytes: bigint;
  /** Increments applied on top of the full backup. */
  increments: number;
  /** The LSN the restored directory is at. */
  sourceLsn: bigint;
}

/**
 * The files of the result and their histories: with `contents.json`, exactly
 * the files of the newest moment (no orphans of dropped tables), each checked
 * against what the chain holds; without, every file the chain ever held.
 */
function filesToLayDown(chain: Chain, state: ChainState): [string, RestoreLayer[]][] {
  const all = histories(chain);
  if (!state.contents) return [...all];
  const { dir, contents } = state.contents;
  return contents.files.map((f) => {
    const layers = all.get(f.name);
    const newest = layers?.at(-1);
    // A file without a map is whole: its newest layer must be that very copy.
    const whole = f.map === undefined;
    if (!newest || (whole && (newest.pageIndices !== undefined || newest.blake3Hex !== f.blake3_hex))) {
      throw new BackupError(
        'ERR_INTEGRITY',
        `integrity check failed for ${f.name}: ${join(dir, CONTENTS_FILE)} lists a version the chain does not hold (backup is corrupt)`,
      );
    }
    return [f.name, layers!];
  });
}

/** Builds every file of the result from its history, files in parallel. */
async function layDown(
  chain: Chain,
  state: ChainState,
  staging: string,
  options: RestoreOptions,
  cancel: Cancellation,
): Promise<void> {
  const files = filesToLayDown(chain, state);
  const total = [...state.lengths.values()].reduce((a, b) => a + b, 0n);
  const progress = new Progress('restore', files.length, total, options.onProgress);
  await mapLimit(files, options.concurrency ?? DEFAULT_CONCURRENCY, async ([name, layers]) => {
    cancel.check();
    await native.restoreFile(join(staging, name), layers, storedMap(state, name), cancel.token);
    progress.fileDone(name, state.lengths.get(name) ?? 0n);
    crashPoint('file-done');
  });
}

/**
 * Restores a full backup and then each increment in order into `dest`
 * (absent or empty). Every manifest and every chain link is checked before
 * a byte is written; every file and delta is verified against its BLAKE3;
 * each page of the result is written once (newest delta first); the result
 * appears at `dest` in one rename, or not at all. Passing a
 * prefix of a chain restores the database as of that increment.
 */
export async function restoreChain(
  fullDir: string,
  incrementDirs: readonly string[],
  dest: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const chain = await readChain(fullDir, incrementDirs);
  const state = chainState(chain);
  await cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'restore', async (staging) => {
      await layDown(chain, state, staging, options, cancel);
      cancel.check();
    }),
  );
  return {
    dest,
    files: state.lengths.size,
    bytes: [...state.lengths.values()].reduce((a, b) => a + b, 0n),
    increments: chain.increments.length,
    sourceLsn: state.sourceLsn,
  };
}

/** Restores a full backup into `dest` (absent or empty); see `restoreChain`. */
export function restore(backupDir: string, dest: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  return restoreChain(backupDir, [], dest, options);
}
