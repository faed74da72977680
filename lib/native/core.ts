import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';
import type * as Binding from './binding.js';

// The addon's operations on files: hashing and copying, page deltas and
// restores of a directory chain, the data directory's lock, verify, cancel
// tokens and progress. Types come from the generated binding.d.ts; the names
// here are what the TypeScript side calls them.
export type { VerifyFinding, HashResult, CopyResult, PageDelta, DeltaResult } from './binding.js';
export type HeapDiff = Binding.HeapDiffResult;

/** How `verifyFile` checks a file beyond its hash. */
export type ContentKind = 'whole' | 'heap' | 'catalog' | 'delta';

/** A file to verify (crate/src/binding.rs VerifyFileArg), with its kinds spelled out. */
export interface VerifyFile extends Omit<Binding.VerifyFileArg, 'artifact' | 'kind' | 'map'> {
  artifact: 'backup' | 'increment';
  kind: ContentKind;
  map?: RestoreLayer;
}

/** Where a heap's content map comes from: a heap file, a stored `.pagemap`, or a chain's layers. */
export type MapSource = { heap: string } | { map: RestoreLayer } | { layers: RestoreLayer[] };

/** One element of a file's history: a whole copy, or a delta when `pageIndices` is set. */
export interface RestoreLayer {
  path: string;
  /** The manifest's name for the copy or delta. */
  name: string;
  len: bigint;
  blake3Hex: string;
  artifact: 'backup' | 'increment';
  totalPages?: number;
  pageIndices?: number[];
}

/** The native addon's version (its crate's). */
export const nativeVersion = (): string => addon.nativeVersion();

/** The addon's operations, each rejecting with a BackupError. */
export const native = {
  hashFile: (path: string, cancel?: number) => withCodes(addon.hashFile(path, cancel)),
  copyHashed: (src: string, dst: string, paged: boolean, mapPath?: string, cancel?: number) =>
    withCodes(addon.copyHashed(src, dst, paged, mapPath, cancel)),
  writeDelta: (
    heap: string,
    deltaPath: string,
    baseLsn: bigint,
    baseMap: MapSource,
    mapPath: string,
    cancel?: number,
  ) => withCodes(addon.writeDelta(heap, deltaPath, baseLsn, baseMap, mapPath, cancel)),
  restoreFile: (target: string, layers: RestoreLayer[], map?: RestoreLayer, cancel?: number) =>
    withCodes(addon.restoreFile(target, layers, map, cancel)),
  diffHeaps: (a: MapSource, b?: MapSource, cancel?: number) => withCodes(addon.diffHeaps(a, b, cancel)),
  acquireLock: (dir: string) => withCodes(addon.acquireLock(dir)),
  releaseLock: (id: number) => withCodes(addon.releaseLock(id)),
  /** Checks one backup file against its manifest entry in one streamed read; problems are findings. */
  verifyFile: (file: VerifyFile, cancel?: number) => withCodes(addon.verifyFile(file, cancel)),
  /** Rewrites the pages of heap `dest` that differ from the chain's (a delta restore). */
  patchHeap: (dest: string, layers: RestoreLayer[], map?: RestoreLayer, cancel?: number) =>
    withCodes(addon.patchHeap(dest, layers, map, cancel)),
  createCancelToken: () => addon.createCancelToken(),
  cancel: (id: number) => addon.cancel(id),
  /** Bytes processed so far by the running jobs of token `id` (an atomic load). */
  progressBytes: (id: number) => addon.progressBytes(id),
  /** Calls `listener` each time the jobs of token `id` have processed another 8 MiB (never keeps Node alive). */
  watchProgress: (id: number, listener: () => void) => addon.watchProgress(id, listener),
  releaseCancelToken: (id: number) => addon.releaseCancelToken(id),
};
