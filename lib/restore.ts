import { join } from 'node:path';
import { chainState, readChain, type Chain, type ChainState } from './chain.js';
import { cancellable, type Cancellation } from './abort.js';
import { crashPoint } from './crashpoint.js';
import type { FileEntry } from './manifest.js';
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

/** Each file's history in chain order: whole copies and the deltas after them. */
function histories(chain: Chain): Map<string, RestoreLayer[]> {
  const layers = new Map<string, RestoreLayer[]>();
  const add = (name: string, layer: RestoreLayer) => layers.set(name, [...(layers.get(name) ?? []), layer]);
  const whole = (dir: string, f: FileEntry, artifact: RestoreLayer['artifact']): RestoreLayer => ({
    path: join(dir, f.name),
    name: f.name,
    len: f.len,
    blake3Hex: f.blake3_hex,
    artifact,
  });
  for (const f of chain.full.files) add(f.name, whole(chain.fullDir, f, 'backup'));
  for (const { dir, manifest } of chain.increments) {
    for (const c of manifest.changed) {
      if ('Whole' in c) {
        add(c.Whole.name, whole(dir, c.Whole, 'increment'));
        continue;
      }
      const p = c.Pages;
      add(p.name, {
        path: join(dir, p.delta_file),
        name: p.delta_file,
        len: p.delta_len,
        blake3Hex: p.delta_blake3_hex,
        artifact: 'increment',
        totalPages: p.total_pages,
        pageIndices: p.page_indices,
      });
    }
  }
  return layers;
}

/** Builds every file of the result from its history, files in parallel. */
async function layDown(
  chain: Chain,
  state: ChainState,
  staging: string,
  options: RestoreOptions,
  cancel: Cancellation,
): Promise<void> {
  const files = [...histories(chain)];
  const total = [...state.lengths.values()].reduce((a, b) => a + b, 0n);
  const progress = new Progress('restore', files.length, total, options.onProgress);
  await mapLimit(files, options.concurrency ?? DEFAULT_CONCURRENCY, async ([name, layers]) => {
    cancel.check();
    await native.restoreFile(join(staging, name), layers, cancel.token);
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
