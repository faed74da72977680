import { join } from 'node:path';
import { CONTENTS_FILE, readContents, type Contents, type MapEntry } from './contents.js';
import { BackupError } from '../common/errors.js';
import type { BackupManifest, FileEntry, IncrementManifest } from './manifest.js';
import { readIncrement, readManifest } from './manifest.js';
import type { RestoreLayer } from '../native/core.js';
import { assertSameLineage, type SyncBlock } from '../source/sync.js';

/** A full backup and increments, read and checked for continuity. */
export interface Chain {
  fullDir: string;
  full: BackupManifest;
  /** The full backup's `contents.json`, null when it has none. */
  fullContents: Contents | null;
  increments: { dir: string; manifest: IncrementManifest; contents: Contents | null }[];
}

/** What the database looked like at the end of a chain, file by file. */
export interface ChainState {
  sourceLsn: bigint;
  /** The sync block of the chain's newest element (a sync-enabled source). */
  sync: SyncBlock | undefined;
  /** BLAKE3 of each file as last shipped whole; absent for heaps shipped as pages. */
  wholeHashes: Map<string, string>;
  /** Length in bytes of every file the chain holds. */
  lengths: Map<string, bigint>;
  /**
   * The exact file set of the chain's newest moment and the directory of its
   * content maps, when the newest element recorded one (`contents.json`).
   */
  contents: { dir: string; contents: Contents } | null;
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
    assertSameLineage(
      full.sync?.identity,
      manifest.sync?.identity,
      `increment sync identity does not match full backup identity (${dir})`,
    );
    running = manifest.source_lsn;
    increments.push({ dir, manifest, contents: await readContents(dir, manifest) });
  }
  return { fullDir, full, fullContents: await readContents(fullDir, full), increments };
}

/** The effective state after applying every increment of `chain`. */
export function chainState(chain: Chain): ChainState {
  const wholeHashes = new Map(chain.full.files.map((f) => [f.name, f.blake3_hex]));
  const lengths = new Map(chain.full.files.map((f) => [f.name, f.len]));
  let sourceLsn = chain.full.source_lsn;
  let sync = chain.full.sync;
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
    sync = manifest.sync;
  }
  const newest = chain.increments.at(-1);
  const last = newest
    ? { dir: newest.dir, contents: newest.contents }
    : { dir: chain.fullDir, contents: chain.fullContents };
  if (!last.contents) return { sourceLsn, sync, wholeHashes, lengths, contents: null };
  // The newest moment's exact file set replaces what the layers accumulated.
  const exact = last.contents.files;
  return {
    sourceLsn,
    sync,
    wholeHashes: new Map(exact.flatMap((f) => (f.blake3_hex ? [[f.name, f.blake3_hex] as const] : []))),
    lengths: new Map(exact.map((f) => [f.name, f.len])),
    contents: { dir: last.dir, contents: last.contents },
  };
}

/** A stored content map as the native layer reads it. */
export function mapLayer(dir: string, map: MapEntry): RestoreLayer {
  return { path: join(dir, map.name), name: map.name, len: map.len, blake3Hex: map.blake3_hex, artifact: 'backup' };
}

/** The chain's content map of heap `name`, when its newest moment recorded one. */
export function storedMap(state: ChainState, name: string): RestoreLayer | undefined {
  const map = state.contents?.contents.files.find((f) => f.name === name)?.map;
  return map && mapLayer(state.contents!.dir, map);
}

/** Each file's history in chain order: whole copies and the deltas after them. */
export function histories(chain: Chain): Map<string, RestoreLayer[]> {
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

/**
 * The files of the result and their histories: with `contents.json`, exactly
 * the files of the newest moment (no orphans of dropped tables), each checked
 * against what the chain holds; without, every file the chain ever held.
 */
export function finalFiles(chain: Chain, state: ChainState): [string, RestoreLayer[]][] {
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
