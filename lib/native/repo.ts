// The addon's format-2 repository operations (crate/src/repo_binding.rs):
// a repository is a handle the native side keeps (its keys stay there).
// Types come from the generated binding.d.ts.
import { toBackupError, withCodes } from '../common/errors.js';
import { addon } from './addon.js';
import type * as Binding from './binding.js';

export type {
  RepoHandle,
  CompareResult,
  CheckBackup,
  CheckResult,
  RepairResult,
  KeyEntry,
  RepoPatchResult,
} from './binding.js';
export type KdfParams = Binding.KdfArg;
export type StoreOptions = Binding.StoreArg;
export type StoredFile = Binding.StoredFileResult;
export type ParentFile = Binding.ParentFileArg;
export type CommitStats = Binding.CommitResult;
export type PruneStats = Binding.PruneResult;
export type ObjectEntry = Binding.ObjectEntry;

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

/** How `storeFile` stores a file. */
export interface StoreFileOptions {
  /** A page-aligned heap, cut into page runs (else cut by content). */
  heap: boolean;
  /** Store the file's change hints, for the next increment. */
  hints?: boolean;
  /** Reuse the ids of the parent's chunks that did not change. */
  parent?: ParentFile;
}

/** Format-2 repository operations, each rejecting with a BackupError. */
export const repoNative = {
  init: (
    location: string,
    compression: string,
    password?: string,
    kdf?: KdfParams,
    store?: StoreOptions,
    format?: 3 | 4,
  ) => withCodes(addon.repoInit(location, compression, password, kdf, store, format)),
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
  /** Live holds; `kind` is one of HoldKind (holds.rs writes nothing else). */
  holds: (handle: number) => withCodes(addon.repoHolds(handle)) as Promise<HoldInfo[]>,
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
  /** The index afresh before adding beside other writers (under a shared hold); a damaged one is refused. */
  refreshToWrite: (handle: number) => withCodes(addon.repoRefreshToWrite(handle)),
  /** Stored bytes of the chunks and lists that `lists` use (shared ones included). */
  heldBytes: (handle: number, backups: string[][]) => withCodes(addon.repoHeldBytes(handle, backups)),
  conditionalWrites: (handle: number): Promise<boolean | null> => withCodes(addon.repoConditionalWrites(handle)),
  repair: (handle: number, backups: Binding.CheckBackup[], cancel?: number) =>
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
  ) => withCodes(addon.repoPatchFile(handle, { ...file, dest, temp }, cancel)),
  compareFile: (handle: number, lists: string[], len: bigint, source: string, heap: boolean, cancel?: number) =>
    withCodes(addon.repoCompareFile(handle, lists, len, source, heap, cancel)),
  check: (handle: number, backups: Binding.CheckBackup[], cancel?: number) =>
    withCodes(addon.repoCheck(handle, backups, cancel)),
  /** With `dryRun`, only what the prune would free. */
  prune: (handle: number, lists: string[], cancel?: number, dryRun = false) =>
    withCodes(addon.repoPrune(handle, lists, cancel, dryRun)),
  keyAdd: (handle: number, current: string, password: string, kdf?: KdfParams) =>
    withCodes(addon.repoKeyAdd(handle, current, password, kdf)),
  keyList: (handle: number) => withCodes(addon.repoKeyList(handle)),
  keyRemove: (handle: number, id: string) => withCodes(addon.repoKeyRemove(handle, id)),
};
