import { BackupError } from './errors.js';
import type { BackupManifest, IncrementManifest } from './manifest.js';
import { readIncrement, readManifest } from './manifest.js';

/** A full backup and increments, read and checked for continuity. */
export interface Chain {
  fullDir: string;
  full: BackupManifest;
  increments: { dir: string; manifest: IncrementManifest }[];
}

/** What the database looked like at the end of a chain, file by file. */
export interface ChainState {
  sourceLsn: bigint;
  /** BLAKE3 of each file as last shipped whole; absent for heaps shipped as pages. */
  wholeHashes: Map<string, string>;
  /** Length in bytes of every file the chain holds. */
  lengths: Map<string, bigint>;
}

/** Throws unless `increment` was built on exactly `runningLsn`. */
export function assertContinues(runningLsn: bigint, increment: IncrementManifest, dir: string): void {
  if (increment.base_source_lsn !== runningLsn) {
    throw new BackupError(
      'ERR_CHAIN_BROKEN',
      `increment chain broken: expected base lsn ${runningLsn}, increment built on ${increment.base_source_lsn} (${dir})`,
    );
  }
}

/** Reads a full backup and its increments (in order) and checks every link. */
export async function readChain(fullDir: string, incrementDirs: readonly string[]): Promise<Chain> {
  const full = await readManifest(fullDir);
  const increments = [];
  let running = full.source_lsn;
  for (const dir of incrementDirs) {
    const manifest = await readIncrement(dir);
    assertContinues(running, manifest, dir);
    running = manifest.source_lsn;
    increments.push({ dir, manifest });
  }
  return { fullDir, full, increments };
}

/** The effective state after applying every increment of `chain`. */
export function chainState(chain: Chain): ChainState {
  const wholeHashes = new Map(chain.full.files.map((f) => [f.name, f.blake3_hex]));
  const lengths = new Map(chain.full.files.map((f) => [f.name, f.len]));
  let sourceLsn = chain.full.source_lsn;
  for (const { manifest } of chain.increments) {
    for (const change of manifest.changed) {
      if ('Whole' in change) {
        wholeHashes.set(change.Whole.name, change.Whole.blake3_hex);
        lengths.set(change.Whole.name, change.Whole.len);
      } else {
        const { name, total_pages } = change.Pages;
        wholeHashes.delete(name);
        const len = BigInt(total_pages) * 4096n;
        if (len > (lengths.get(name) ?? 0n)) lengths.set(name, len);
      }
    }
    sourceLsn = manifest.source_lsn;
  }
  return { sourceLsn, wholeHashes, lengths };
}
