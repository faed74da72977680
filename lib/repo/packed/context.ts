// What the operations of a format-2 repository need of it (the PackedRepository
// façade provides it): its handle, its WAL archive, its snapshots, its locks.
import type { RepoHandle } from '../../native/repo.js';
import type { WalArchive } from '../archive.js';
import type { BackupRecord, ExpireOptions, RestoreAsOf } from '../base.js';
import type { BackupError } from '../../common/errors.js';
import type { Snapshot, SnapshotHead } from '../snapshot.js';

/** The catalog as picking among backups reads it (PackedRepository.readHeads). */
export interface Heads {
  heads: SnapshotHead[];
  unreadable: { id: string; err: BackupError }[];
  /** What each backup holds, by id (asked for with `held`). */
  held: Map<string, bigint>;
}

export interface PackedContext {
  readonly dir: string;
  readonly handle: RepoHandle;
  readonly wal: WalArchive;
  snapshot(id: string): Promise<Snapshot>;
  snapshotIds(): Promise<string[]>;
  /** Every snapshot that can be read, and the errors of those that cannot. */
  readSnapshots(): Promise<{ readable: Snapshot[]; unreadable: { id: string; err: BackupError }[] }>;
  /** Every backup's record and sync block, through the catalog summary where it holds them. */
  readHeads(options?: { held?: boolean }): Promise<Heads>;
  /** The snapshot a restore or export of `asOf` (of `source`) needs. */
  pickSnapshot(asOf: RestoreAsOf['asOf'], source?: string): Promise<Snapshot>;
  /** Of `readable`, the snapshots a restore of `asOf` picks among: those of one source. */
  snapshotsToPick<S extends SnapshotHead>(
    readable: S[],
    asOf: RestoreAsOf['asOf'],
    source: string | undefined,
    ids: string[],
  ): S[];
  /** The backups of each source. */
  sources(records: BackupRecord[]): Map<string, BackupRecord[]>;
  list(): Promise<BackupRecord[]>;
  /** The backups an expire keeps. */
  retained(records: BackupRecord[], options: ExpireOptions): Set<string>;
  /** Runs a backup's or archive run's `work` beside other writers, under a shared hold (see PackedRepository). */
  alongside<T>(operation: string, lockWaitMs: number, work: () => Promise<T>): Promise<T>;
  /** Runs expire's, repair's or a key removal's `work` holding the repository alone (see PackedRepository). */
  alone<T>(operation: string, lockWaitMs: number, work: () => Promise<T>): Promise<T>;
  /** Whether the store refuses to overwrite on create and replace (null: unknown, these credentials cannot probe). */
  conditionalWrites(): Promise<boolean | null>;
  /** Before publishing: what the session holds is still ours. */
  confirmLock(): Promise<void>;
}

/** Backup options for a migration: the backup keeps its original identity. */
export interface As {
  as?: Pick<BackupRecord, 'id' | 'type' | 'parent' | 'created' | 'source'>;
}
