/**
 * powdb-backup: backup, restore and point-in-time recovery for PowDB data
 * directories. Formats match the reference Rust crate `powdb-backup`.
 */
export { fullBackup, incrementalBackup, type BackupOptions } from './lib/chain/backup.js';
export { restore, restoreChain, type RestoreOptions, type RestoreResult } from './lib/restore/restore.js';
export type { RestoredTable, TableOptions, TableRestoreSummary } from './lib/restore/tables.js';
export type { ListOptions, TableListing, TablesInfo } from './lib/restore/tables-list.js';
export { chainDump, chainTables } from './lib/restore/restore.js';
export type { DumpFormat, DumpOptions, DumpResult } from './lib/restore/dump.js';
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
} from './lib/chain/manifest.js';
export {
  verifyBackup,
  verifyChain,
  type VerifyOptions,
  type VerifyReport,
  type VerifyProblem,
} from './lib/chain/verify.js';
export { readContents, CONTENTS_FILE, type Contents, type ContentsEntry } from './lib/chain/contents.js';
export type { OperationOptions, ProgressEvent } from './lib/common/progress.js';
export { BackupError, type BackupErrorCode } from './lib/common/errors.js';
export {
  Repository,
  PackedRepository,
  LegacyRepository,
  type BackupRecord,
  type BackupSource,
  type BackupType,
  type ExpireOptions,
  type ExpireResult,
  type InitOptions,
  type OpenOptions,
  type RepositoryDump,
  type RepositoryDumpOptions,
  type RepositoryTotals,
  type SourceSummary,
  type StoreOptions,
} from './lib/repo/repository.js';
export { migrate } from './lib/repo/migrate.js';
export type { SyncBlock, SyncIdentity, SyncMode, SyncOutcome } from './lib/source/sync.js';
export type { RepositoryHold } from './lib/repo/holds.js';
export type { ArchiveResult } from './lib/repo/archive.js';
export type {
  ArchiveEveryOptions,
  ArchiveEveryResult,
  ArchiveOptions,
  ArchiveRound,
} from './lib/repo/archive-round.js';
