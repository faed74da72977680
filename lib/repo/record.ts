// A backup as a repository's catalog lists it, and the order and ids of
// backups: the leaf every repository module builds on.

/** The database a backup was taken of. */
export interface BackupSource {
  host: string;
  /** The data directory, resolved (symlinks followed). */
  path: string;
  /** A sync-enabled database's id (`.powdb-sync/identity.json`): it survives a move to another path or host. */
  database_id?: string;
  /** The name the user gave the source (`backup --source`): its key, wherever the database is. */
  name?: string;
}

/** `full`; `incr`: on the newest backup; `diff`: on the newest full backup. */
export type BackupType = 'full' | 'incr' | 'diff';

/** One backup of a repository, as its catalog lists it. */
export interface BackupRecord {
  id: string;
  type: BackupType;
  /** The backup this one builds on (null for a full backup). */
  parent: string | null;
  base_source_lsn: bigint | null;
  source_lsn: bigint;
  /** ISO 8601, UTC. */
  created: string;
  /** Bytes this backup added to the repository (the same as `stored_bytes`). */
  bytes: bigint;
  files: number;
  /** Format 1: pages shipped in deltas; format 2: heap pages of the backup. */
  pages: number;
  /** Bytes of the database's files at that moment. */
  logical_bytes: bigint;
  /** What the backup added to the repository (format 2: after deduplication and compression). */
  stored_bytes: bigint;
  /** The database it was taken of: its source (absent in backups of releases before 0.1.1). */
  source?: BackupSource;
  /**
   * (`info`, format 2) Stored bytes of every chunk the backup uses, shared ones
   * included: what it holds in the repository now. `stored_bytes` is what it
   * added when taken, which after a prune can be next to nothing.
   */
  held_bytes?: bigint;
}

const SUFFIX: Record<BackupType, string> = { full: 'F', incr: 'I', diff: 'D' };

/** A sortable id for a backup taken at `at`: 20261123T101500Z-F. */
export function backupId(at: Date, type: BackupType): string {
  return `${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${SUFFIX[type]}`;
}

/** An id for a new backup that none of `records` has. */
export function newBackupId(records: Pick<BackupRecord, 'id'>[], at: Date, type: BackupType): string {
  let id = backupId(at, type);
  for (let n = 2; records.some((r) => r.id === id); n++) id = `${backupId(at, type)}-${n}`;
  return id;
}

/** Oldest first: ids sort to the second, `created` orders backups taken within one. */
export function sortRecords(records: BackupRecord[]): BackupRecord[] {
  return records.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1));
}
