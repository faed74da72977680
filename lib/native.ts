import { withCodes } from './errors.js';
import { loadAddon } from './loader.js';

/** What the native addon exports (see crate/src/binding.rs). */
interface NativeAddon {
  hashFile(path: string, cancel?: number): Promise<HashResult>;
  copyHashed(src: string, dst: string, paged: boolean, mapPath?: string, cancel?: number): Promise<CopyResult>;
  writeDelta(
    heap: string,
    deltaPath: string,
    baseLsn: bigint,
    baseMap: MapSource,
    mapPath: string,
    cancel?: number,
  ): Promise<DeltaResult>;
  restoreFile(target: string, layers: RestoreLayer[], map?: RestoreLayer, cancel?: number): Promise<void>;
  diffHeaps(a: MapSource, b?: MapSource, cancel?: number): Promise<HeapDiff>;
  acquireLock(dir: string): Promise<number>;
  releaseLock(id: number): Promise<void>;
  verifyFile(
    path: string,
    name: string,
    len: bigint,
    blake3Hex: string,
    artifact: string,
    kind: ContentKind,
    maxLsn: bigint,
    totalPages?: number,
    pageIndices?: number[],
    map?: RestoreLayer,
    cancel?: number,
  ): Promise<VerifyFinding[]>;
  createCancelToken(): number;
  cancel(id: number): void;
  releaseCancelToken(id: number): void;
}

/** How `verifyFile` checks a file beyond its hash. */
export type ContentKind = 'whole' | 'heap' | 'catalog' | 'delta';

export interface VerifyFinding {
  code: string;
  message: string;
  page?: number | null;
}

export interface HashResult {
  len: bigint;
  blake3Hex: string;
}

export interface CopyResult extends HashResult {
  maxPageLsn: bigint;
  /** The content map written beside a heap copied as pages. */
  map?: HashResult | null;
}

/** Where a heap's content map comes from: a heap file, a stored `.pagemap`, or a chain's layers. */
export type MapSource = { heap: string } | { map: RestoreLayer } | { layers: RestoreLayer[] };

/** How two heaps differ, page by page (`differing` lists the first 1000). */
export interface HeapDiff {
  aPages: number;
  bPages: number;
  differing: number[];
  differingCount: number;
  /** A v2 superblock over overflow pages, in either heap. */
  shapeProblem?: { page: number; message: string } | null;
}

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

export interface PageDelta {
  totalPages: number;
  pageIndices: number[];
  deltaLen: bigint;
  blake3Hex: string;
}

export interface DeltaResult {
  delta?: PageDelta | null;
  maxPageLsn: bigint;
  /** The heap's content map as it is now. */
  map: HashResult;
}

const addon = loadAddon<NativeAddon>();

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
  verifyFile: (
    path: string,
    expected: { name: string; len: bigint; blake3Hex: string },
    artifact: 'backup' | 'increment',
    kind: ContentKind,
    maxLsn: bigint,
    pages?: { totalPages: number; pageIndices: number[] },
    map?: RestoreLayer,
    cancel?: number,
  ) =>
    withCodes(
      addon.verifyFile(
        path,
        expected.name,
        expected.len,
        expected.blake3Hex,
        artifact,
        kind,
        maxLsn,
        pages?.totalPages,
        pages?.pageIndices,
        map,
        cancel,
      ),
    ),
  createCancelToken: () => addon.createCancelToken(),
  cancel: (id: number) => addon.cancel(id),
  releaseCancelToken: (id: number) => addon.releaseCancelToken(id),
};
