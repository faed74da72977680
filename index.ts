/**
 * powdb-backup: backup, restore and point-in-time recovery for PowDB data
 * directories. Formats match the reference Rust crate `powdb-backup`.
 */
export { fullBackup, incrementalBackup, type BackupOptions } from './lib/backup.js';
export { restore, restoreChain, type RestoreOptions, type RestoreResult } from './lib/restore.js';
export {
  readManifest,
  readIncrement,
  formatBackupManifest,
  formatIncrementManifest,
  parseBackupManifest,
  parseIncrementManifest,
  FORMAT_VERSION,
  type BackupManifest,
  type IncrementManifest,
  type FileEntry,
  type PagesEntry,
  type ChangedFile,
} from './lib/manifest.js';
export { verifyBackup, verifyChain, type VerifyOptions, type VerifyReport, type VerifyProblem } from './lib/verify.js';
export { readContents, CONTENTS_FILE, type Contents, type ContentsEntry } from './lib/contents.js';
export type { OperationOptions, ProgressEvent } from './lib/progress.js';
export { BackupError, type BackupErrorCode } from './lib/errors.js';
export {
  Repository,
  PackedRepository,
  LegacyRepository,
  type BackupRecord,
  type BackupType,
  type ExpireOptions,
  type ExpireResult,
  type InitOptions,
  type OpenOptions,
  type RepositoryTotals,
  type StoreOptions,
} from './lib/repository.js';
export { migrate } from './lib/migrate.js';
export type { SyncBlock, SyncIdentity, SyncMode, SyncOutcome } from './lib/sync.js';
export type { RepositoryHold } from './lib/repo/holds.js';
