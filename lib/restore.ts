import { join } from 'node:path';
import { chainState, readChain, type Chain } from './chain.js';
import { crashPoint } from './crashpoint.js';
import type { ChangedFile, FileEntry } from './manifest.js';
import { native } from './native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './pool.js';
import { Progress, type OperationOptions } from './progress.js';
import { buildAtomically } from './staging.js';

export type RestoreOptions = OperationOptions;

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

const expectedOf = (f: FileEntry) => ({ name: f.name, len: f.len, blake3Hex: f.blake3_hex });

/** One file to lay down, verified as it is written. */
interface Step {
  name: string;
  bytes: bigint;
  run: () => Promise<void>;
}

function changeStep(dir: string, change: ChangedFile, staging: string): Step {
  if ('Whole' in change) {
    const f = change.Whole;
    return {
      name: f.name,
      bytes: f.len,
      run: () => native.copyVerified(join(dir, f.name), join(staging, f.name), expectedOf(f), 'increment'),
    };
  }
  const p = change.Pages;
  const spec = {
    totalPages: p.total_pages,
    pageIndices: p.page_indices,
    deltaLen: p.delta_len,
    blake3Hex: p.delta_blake3_hex,
  };
  return {
    name: p.delta_file,
    bytes: p.delta_len,
    run: () => native.applyDelta(join(dir, p.delta_file), join(staging, p.name), p.delta_file, spec),
  };
}

/** The full backup's files, then each increment's changes: stages run in order, files within one in parallel. */
function stages(chain: Chain, staging: string): Step[][] {
  const full = chain.full.files.map((f) => ({
    name: f.name,
    bytes: f.len,
    run: () => native.copyVerified(join(chain.fullDir, f.name), join(staging, f.name), expectedOf(f), 'backup'),
  }));
  return [
    full,
    ...chain.increments.map(({ dir, manifest }) => manifest.changed.map((c) => changeStep(dir, c, staging))),
  ];
}

async function layDown(chain: Chain, staging: string, options: RestoreOptions): Promise<void> {
  const all = stages(chain, staging);
  const steps = all.flat();
  const total = steps.reduce((sum, step) => sum + step.bytes, 0n);
  const progress = new Progress('restore', steps.length, total, options.onProgress);
  for (const stage of all) {
    await mapLimit(stage, options.concurrency ?? DEFAULT_CONCURRENCY, async (step) => {
      await step.run();
      progress.fileDone(step.name, step.bytes);
      crashPoint('file-done');
    });
  }
}

/**
 * Restores a full backup and then each increment in order into `dest`
 * (absent or empty). Every manifest and every chain link is checked before
 * a byte is written; every file and delta is verified against its BLAKE3;
 * the result appears at `dest` in one rename, or not at all. Passing a
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
  await buildAtomically(dest, 'restore', (staging) => layDown(chain, staging, options));
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
