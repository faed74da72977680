import { toBackupError, withCodes } from './errors.js';
import { loadAddon } from './loader.js';

/** A repository hold: `shared` for readers, `exclusive` for removers (crate/src/core/repo/holds.rs). */
export type HoldKind = 'shared' | 'exclusive';
/** A live hold as the addon reports it. */
export interface HoldInfo {
  kind: HoldKind;
  operation: string;
  host: string;
  pid: number;
  expiresUnixSecs: number;
}

/** What the native addon exports (see crate/src/binding.rs). */
interface NativeAddon {
  nativeVersion(): string;
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
  progressBytes(id: number): bigint;
  watchProgress(id: number, listener: () => void): void;
  releaseCancelToken(id: number): void;
  repoInit(
    location: string,
    compression: string,
    password?: string,
    kdf?: KdfParams,
    store?: StoreOptions,
  ): Promise<RepoHandle>;
  repoOpen(location: string, password?: string, store?: StoreOptions): Promise<RepoHandle>;
  repoWriterLock(handle: number): Promise<string | null>;
  repoWriterRenew(handle: number): Promise<void>;
  repoWriterUnlock(handle: number): Promise<void>;
  repoLocate(location: string): { resolved: string; remote: boolean };
  repoHoldAcquire(handle: number, kind: HoldKind, operation: string): Promise<string>;
  repoHoldRenew(handle: number, owner: string): Promise<void>;
  repoHoldRelease(handle: number, owner: string): Promise<void>;
  repoHolds(handle: number): Promise<HoldInfo[]>;
  repoClose(handle: number): void;
  repoReadObject(handle: number, key: string): Promise<Buffer>;
  repoWriteObject(handle: number, key: string, data: Buffer): Promise<bigint>;
  repoListObjects(handle: number, prefix: string): Promise<{ key: string; size: bigint }[]>;
  repoDeleteObject(handle: number, key: string): Promise<void>;
  repoStoreFile(
    handle: number,
    path: string,
    heap: boolean,
    hints: boolean,
    parent: ParentFile | undefined,
    cancel?: number,
  ): Promise<StoredFile>;
  repoCommit(handle: number): Promise<CommitStats>;
  repoAbandon(handle: number): void;
  repoSettleUnindexed(handle: number): Promise<number>;
  repoRefresh(handle: number): Promise<void>;
  repoHeldBytes(handle: number, lists: string[]): Promise<bigint>;
  repoConditionalWrites(handle: number): Promise<boolean | null>;
  repoRepair(handle: number, backups: CheckBackup[], cancel?: number): Promise<RepairResult>;
  repoRestoreFile(
    handle: number,
    lists: string[],
    len: bigint,
    dest: string,
    hash: boolean,
    cancel?: number,
  ): Promise<string | null>;
  repoRestoreFiles(
    handle: number,
    files: { lists: string[]; len: bigint; dest: string }[],
    hash: boolean,
    cancel?: number,
  ): Promise<(string | null)[]>;
  repoPatchFile(
    handle: number,
    lists: string[],
    hints: string[] | undefined,
    len: bigint,
    dest: string,
    temp: string,
    heap: boolean,
    cancel?: number,
  ): Promise<RepoPatchResult>;
  repoCompareFile(
    handle: number,
    lists: string[],
    len: bigint,
    source: string,
    heap: boolean,
    cancel?: number,
  ): Promise<CompareResult>;
  repoCheck(handle: number, backups: CheckBackup[], cancel?: number): Promise<CheckResult>;
  repoPrune(handle: number, lists: string[], cancel?: number, dryRun?: boolean): Promise<PruneStats>;
  repoKeyAdd(handle: number, current: string, password: string, kdf?: KdfParams): Promise<string>;
  repoKeyList(handle: number): Promise<KeyEntry[]>;
  repoKeyRemove(handle: number, id: string): Promise<void>;
}

/** argon2id cost of a password key (tests use a cheap one). */
export interface KdfParams {
  mKib: number;
  t: number;
  p: number;
}

/** An open format-2 repository in the native layer (its keys stay there). */
export interface RepoHandle {
  handle: number;
  id: string;
  compression: string;
  encryption: string;
  createdUnixSecs: bigint;
  keyId?: string | null;
  /** The storage is remote (an object store): writers hold a leased lock object, not a flock. */
  remote: boolean;
}

/** Where an object-store repository is reached (credentials come from the AWS environment). */
export interface StoreOptions {
  /** The endpoint, e.g. `http://127.0.0.1:8333` (default: AWS_ENDPOINT_URL, else AWS S3). */
  endpoint?: string;
  /** Never use conditional writes (as on servers that ignore them). */
  noConditionalWrites?: boolean;
  /** Requests in flight at once: pack uploads, ranged reads (1-16, default 4). */
  concurrency?: number;
}

/** A file stored as chunks: the ids of the lists naming them in order. */
export interface StoredFile {
  len: bigint;
  lists: string[];
  /** The lists of the file's change hints (when asked for). */
  hints?: string[];
  maxLsn: bigint;
  chunks: number;
  newChunks: number;
  /** Chunks whose id came from the parent's: unchanged by their fast hash, not hashed for an id. */
  reused: number;
}

/** What the parent backup stored of a file: its lists and change hints. */
export interface ParentFile {
  lists: string[];
  hints: string[];
}

/** How `storeFile` stores a file. */
export interface StoreFileOptions {
  /** A page-aligned heap, cut into page runs (else cut by content). */
  heap: boolean;
  /** Store the file's change hints, for the next increment. */
  hints?: boolean;
  /** Reuse the ids of the parent's chunks that did not change. */
  parent?: ParentFile;
}

export interface CommitStats {
  blobs: bigint;
  rawBytes: bigint;
  storedBytes: bigint;
  packs: bigint;
}

export interface CompareResult {
  sourceLen: bigint;
  equal: boolean;
  differing: bigint[];
  differingCount: bigint;
}

export interface CheckBackup {
  id: string;
  files: { name: string; lists: string[] }[];
}

export interface CheckResult {
  problems: { code: string; message: string }[];
  backups: { id: string; problems: { code: string; message: string }[] }[];
  packs: bigint;
  blobs: bigint;
  bytes: bigint;
  /** Damaged locations this check recorded in the repository. */
  damageRecorded: number;
  /** Why the damage found could not be recorded (a read-only repository). */
  warning?: string | null;
}

export interface PruneStats {
  packsRemoved: number;
  packsRepacked: number;
  packsWritten: number;
  blobsRemoved: number;
  bytesFreed: number;
}

export interface RepairResult {
  /** Index objects that failed their seal, removed (their packs indexed anew). */
  indexesRemoved: number;
  /** Packs no index listed, indexed anew with their intact chunks. */
  packsIndexed: number;
  /** Packs removed: damaged or missing ones, and unlisted ones with nothing intact. */
  packsRemoved: number;
  /** Packs found damaged or missing. */
  packsDamaged: number;
  /** Intact chunks of damaged packs copied into new packs. */
  chunksSalvaged: number;
  /** Chunks of which no intact copy is left: dropped from the index. */
  chunksLost: number;
  /** New packs holding the salvaged chunks. */
  packsWritten: number;
  /** Damage records (written by verify) dealt with and removed. */
  damageRecordsCleared: number;
  /** The backups that need chunks that are gone, and their files that do; kept (see `repair`). */
  backups: { id: string; files: { name: string; chunksMissing: number }[] }[];
}

export interface KeyEntry {
  id: string;
  createdUnixSecs: bigint;
  current: boolean;
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

/** What a delta restore of one repository file did (crate/src/inplace_binding.rs). */
export interface RepoPatchResult {
  pagesCompared: bigint;
  pagesRewritten: bigint;
  bytesWritten: bigint;
  /** Rebuilt into `temp`, to be renamed over the destination. */
  rebuilt: boolean;
  chunksFetched: bigint;
  bytesFetched: bigint;
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
  /** Bytes processed so far by the running jobs of token `id` (an atomic load). */
  progressBytes: (id: number) => addon.progressBytes(id),
  /** Calls `listener` each time the jobs of token `id` have processed another 8 MiB (never keeps Node alive). */
  watchProgress: (id: number, listener: () => void) => addon.watchProgress(id, listener),
  releaseCancelToken: (id: number) => addon.releaseCancelToken(id),
};

/** Format-2 repository operations, each rejecting with a BackupError. */
export const repoNative = {
  init: (location: string, compression: string, password?: string, kdf?: KdfParams, store?: StoreOptions) =>
    withCodes(addon.repoInit(location, compression, password, kdf, store)),
  open: (location: string, password?: string, store?: StoreOptions) =>
    withCodes(addon.repoOpen(location, password, store)),
  /** Resolves a location (a store's URL, else an absolute path); refuses an unknown scheme. */
  locate: (location: string): { resolved: string; remote: boolean } => {
    try {
      return addon.repoLocate(location);
    } catch (err) {
      throw toBackupError(err);
    }
  },
  /** The writer lock, held as the storage allows (a flock locally, a lease on object storage). */
  writerLock: (handle: number) => withCodes(addon.repoWriterLock(handle)),
  writerRenew: (handle: number) => withCodes(addon.repoWriterRenew(handle)),
  writerUnlock: (handle: number) => withCodes(addon.repoWriterUnlock(handle)),
  holdAcquire: (handle: number, kind: HoldKind, operation: string) =>
    withCodes(addon.repoHoldAcquire(handle, kind, operation)),
  holdRenew: (handle: number, owner: string) => withCodes(addon.repoHoldRenew(handle, owner)),
  holdRelease: (handle: number, owner: string) => withCodes(addon.repoHoldRelease(handle, owner)),
  holds: (handle: number) => withCodes(addon.repoHolds(handle)),
  close: (handle: number) => addon.repoClose(handle),
  readObject: (handle: number, key: string) => withCodes(addon.repoReadObject(handle, key)),
  writeObject: (handle: number, key: string, data: Buffer) => withCodes(addon.repoWriteObject(handle, key, data)),
  listObjects: (handle: number, prefix: string) => withCodes(addon.repoListObjects(handle, prefix)),
  deleteObject: (handle: number, key: string) => withCodes(addon.repoDeleteObject(handle, key)),
  storeFile: (handle: number, path: string, options: StoreFileOptions, cancel?: number) =>
    withCodes(addon.repoStoreFile(handle, path, options.heap, options.hints ?? false, options.parent, cancel)),
  commit: (handle: number) => withCodes(addon.repoCommit(handle)),
  abandon: (handle: number) => addon.repoAbandon(handle),
  settleUnindexed: (handle: number) => withCodes(addon.repoSettleUnindexed(handle)),
  refresh: (handle: number) => withCodes(addon.repoRefresh(handle)),
  /** Stored bytes of the chunks and lists that `lists` use (shared ones included). */
  heldBytes: (handle: number, lists: string[]) => withCodes(addon.repoHeldBytes(handle, lists)),
  conditionalWrites: (handle: number): Promise<boolean | null> => withCodes(addon.repoConditionalWrites(handle)),
  repair: (handle: number, backups: CheckBackup[], cancel?: number) =>
    withCodes(addon.repoRepair(handle, backups, cancel)),
  restoreFile: (handle: number, lists: string[], len: bigint, dest: string, hash: boolean, cancel?: number) =>
    withCodes(addon.repoRestoreFile(handle, lists, len, dest, hash, cancel)),
  /** Restores several files at once, reading each pack's chunks for all of them together; with `hash`, their BLAKE3s. */
  restoreFiles: (
    handle: number,
    files: { lists: string[]; len: bigint; dest: string }[],
    hash: boolean,
    cancel?: number,
  ) => withCodes(addon.repoRestoreFiles(handle, files, hash, cancel)),
  /** `hints`: the file's change hints, to compare the destination by XXH3. */
  patchFile: (
    handle: number,
    file: { lists: string[]; hints?: string[]; len: bigint; heap: boolean },
    dest: string,
    temp: string,
    cancel?: number,
  ) => withCodes(addon.repoPatchFile(handle, file.lists, file.hints, file.len, dest, temp, file.heap, cancel)),
  compareFile: (handle: number, lists: string[], len: bigint, source: string, heap: boolean, cancel?: number) =>
    withCodes(addon.repoCompareFile(handle, lists, len, source, heap, cancel)),
  check: (handle: number, backups: CheckBackup[], cancel?: number) =>
    withCodes(addon.repoCheck(handle, backups, cancel)),
  /** With `dryRun`, only what the prune would free. */
  prune: (handle: number, lists: string[], cancel?: number, dryRun = false) =>
    withCodes(addon.repoPrune(handle, lists, cancel, dryRun)),
  keyAdd: (handle: number, current: string, password: string, kdf?: KdfParams) =>
    withCodes(addon.repoKeyAdd(handle, current, password, kdf)),
  keyList: (handle: number) => withCodes(addon.repoKeyList(handle)),
  keyRemove: (handle: number, id: string) => withCodes(addon.repoKeyRemove(handle, id)),
};
