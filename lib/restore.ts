import { join } from 'node:path';
import { chainState, readChain, type Chain } from './chain.js';
import { native } from './native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './pool.js';
import { buildAtomically } from './staging.js';

export interface RestoreOptions {
  /** Files copied at once; defaults to the number of cores. */
  concurrency?: number;
}

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

async function layDown(chain: Chain, staging: string, concurrency: number): Promise<void> {
  await mapLimit(chain.full.files, concurrency, (f) =>
    native.copyVerified(join(chain.fullDir, f.name), join(staging, f.name), { name: f.name, len: f.len, blake3Hex: f.blake3_hex }, 'backup'),
  );
  for (const { dir, manifest } of chain.increments) {
    await mapLimit(manifest.changed, concurrency, (change) => {
      if ('Whole' in change) {
        const f = change.Whole;
        return native.copyVerified(join(dir, f.name), join(staging, f.name), { name: f.name, len: f.len, blake3Hex: f.blake3_hex }, 'increment');
      }
      const p = change.Pages;
      return native.applyDelta(join(dir, p.delta_file), join(staging, p.name), p.delta_file, {
        totalPages: p.total_pages,
        pageIndices: p.page_indices,
        deltaLen: p.delta_len,
        blake3Hex: p.delta_blake3_hex,
      });
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
  await buildAtomically(dest, 'restore', (staging) => layDown(chain, staging, options.concurrency ?? DEFAULT_CONCURRENCY));
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
