import { BackupError } from '../errors.js';
import type { BackupOptions } from '../backup.js';
import type { OperationOptions } from '../progress.js';
import type { RestoreOptions, RestoreResult } from '../restore.js';
import type { VerifyOptions, VerifyReport } from '../verify.js';
import type { ReplaySummary } from './pitr.js';
import type { ArchiveResult } from './archive.js';
import type { KdfParams, RepairResult } from '../native.js';
import type { BackupManifest } from '../manifest.js';
import type { BackupSource } from './source.js';

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
  /** The database it was taken of (absent in backups of releases before 0.1.1). */
  source?: BackupSource;
  /**
   * (`info`, format 2) Stored bytes of every chunk the backup uses, shared ones
   * included: what it holds in the repository now. `stored_bytes` is what it
   * added when taken, which after a prune can be next to nothing.
   */
  held_bytes?: bigint;
}

/** A backup into a repository: its catalog type, and whether a changed source is the same database. */
export interface RepositoryBackupOptions extends BackupOptions {
  type?: BackupType;
  /** The data directory holds the database the repository backs up, although its path, host or LSN say otherwise. */
  sameDatabase?: boolean;
}

/** Repository totals for `info`. */
export interface RepositoryTotals {
  format: 1 | 2;
  compression: string;
  encryption: string;
  backups: number;
  /** Sum of the backups' logical sizes. */
  logical_bytes: bigint;
  /** Bytes the repository occupies. */
  stored_bytes: bigint;
  /**
   * Object storage: whether the store refuses to overwrite (false: it ignores
   * conditional writes; null: unknown, these credentials cannot write).
   */
  conditional_writes?: boolean | null;
}

export interface ExpireOptions {
  retainFull: number;
  /** Aborts the prune between steps (what is done stays consistent). */
  signal?: AbortSignal;
  retainDays?: number;
  dryRun?: boolean;
}

export interface ExpireResult {
  removed: string[];
  kept: string[];
  /** Format 2: the archived WAL segments removed (no kept backup replays them). */
  archiveRemoved?: string[];
  /** Format 2: what the prune freed. */
  pruned?: { packsRemoved: number; packsRepacked: number; blobsRemoved: number; bytesFreed: bigint };
}

export type RestoreAsOf = RestoreOptions & { asOf?: string | bigint | Date };

/** A repository restore: the backup applied, the WAL replayed, and (with `asOf`) how the target resolved. */
export type RepositoryRestoreResult = RestoreResult & {
  applied: string[];
  replay?: ReplaySummary;
  target?: RestoreTarget;
};

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

/** What `asOf` names: a backup id, an LSN, or a time. */
export type Target = { id: string } | { lsn: bigint } | { time: number };

/** An ISO 8601 date and time; its zone (`Z` or `+hh:mm`) is captured apart. */
const ISO_TIME = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * A time target in milliseconds. It must carry its zone: read in the machine's
 * local time, one string would name different moments on different hosts (a
 * restore under another TZ restored hours later). A moment in the future has
 * no state to restore yet.
 */
export function parseTime(text: string, now = Date.now()): number | undefined {
  const m = ISO_TIME.exec(text.trim());
  if (!m) return undefined;
  if (!m[2]) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${text} has no time zone: add Z for UTC (${m[1]!.replace(' ', 'T')}Z) or the offset it was taken in (for example +09:00)`,
    );
  }
  const time = Date.parse(`${m[1]!.replace(' ', 'T')}${m[2].length === 3 ? `${m[2]}:00` : m[2]}`);
  if (Number.isNaN(time)) return undefined;
  if (time > now) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${text} (${new Date(time).toISOString()}) is in the future (now ${new Date(now).toISOString()}); leave --as-of out for the newest point`,
    );
  }
  return time;
}

export function parseTarget(asOf: string | bigint | Date, ids: Set<string>): Target {
  if (asOf instanceof Date) return { time: asOf.getTime() };
  if (typeof asOf === 'bigint') return { lsn: asOf };
  if (ids.has(asOf)) return { id: asOf };
  if (/^\d+$/.test(asOf)) return { lsn: BigInt(asOf) };
  const time = parseTime(asOf);
  if (time === undefined) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${asOf} is neither a backup id, an LSN nor an ISO 8601 time with a zone (2026-12-07T08:44:04Z)`,
    );
  }
  return { time };
}

/** What a restore with a target resolved it to, printed after every such restore. */
export interface RestoreTarget {
  /** The target as given. */
  asked: string;
  /** A time target, in UTC. */
  time?: string;
  /** The backup restored, when it was taken, and its LSN. */
  backup: string;
  backup_created: string;
  backup_lsn: bigint;
  /** The LSN the restored directory is at (past `backup_lsn` when archived WAL was replayed). */
  lsn: bigint;
  /** False when nothing reaches the target itself: the restored state is older than asked (`note` says by how much). */
  exact: boolean;
  note?: string;
}

/** How `asOf` resolved, for a restore of `record` that reached `lsn` (replaying WAL when `replayed`). */
export function resolvedTarget(
  asOf: string | bigint | Date | undefined,
  record: BackupRecord,
  lsn: bigint,
  replayed: boolean,
  ids: Set<string>,
): RestoreTarget | undefined {
  if (asOf === undefined) return undefined;
  const target = parseTarget(asOf, ids);
  const asked = asOf instanceof Date ? asOf.toISOString() : String(asOf);
  const base = { asked, backup: record.id, backup_created: record.created, backup_lsn: record.source_lsn, lsn };
  if ('id' in target) return { ...base, exact: true };
  if ('lsn' in target) {
    const exact = replayed || lsn >= target.lsn;
    const note = exact
      ? undefined
      : `LSN ${target.lsn} is past backup ${record.id} (LSN ${record.source_lsn}) and no archived WAL reaches it: restored LSN ${lsn}, the newest state at or before the target that the repository holds`;
    return { ...base, exact, ...(note ? { note } : {}) };
  }
  const time = new Date(target.time).toISOString();
  // Ids and times are to the second; a backup within the target's second is the target.
  const behind = target.time - Date.parse(record.created);
  const exact = replayed || behind < 1000;
  const note = exact
    ? undefined
    : `no backup or archived WAL reaches ${time}: restored backup ${record.id} as of ${record.created}, ${elapsed(behind)} before the target`;
  return { ...base, time, exact, ...(note ? { note } : {}) };
}

/** A duration for a note: 2 h 5 min, 40 s. */
function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ${s % 60} s`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

/** The type and parent of the next backup (`incr` by default; `full` when there is none). */
export function nextBackup(
  records: BackupRecord[],
  wanted: BackupType = 'incr',
): { type: BackupType; parent: BackupRecord | undefined } {
  const fulls = records.filter((r) => r.type === 'full');
  const type: BackupType = fulls.length === 0 ? 'full' : wanted;
  const parent = type === 'full' ? undefined : type === 'diff' ? fulls.at(-1)! : records.at(-1)!;
  return { type, parent };
}

/** A repository of backups; format 1 (directories in the reference format) or 2 (packs). */
export abstract class RepositoryBase {
  abstract readonly dir: string;
  abstract readonly format: 1 | 2;

  /** Every backup, oldest first. */
  abstract list(): Promise<BackupRecord[]>;
  /** Backs `dataDir` up: `incr` (default) on the newest backup, `diff` on the newest full, or `full`. */
  abstract backup(dataDir: string, options?: RepositoryBackupOptions): Promise<BackupRecord>;
  /** Restores the newest backup at or before `asOf` (default: the newest) into `dest`. */
  abstract restore(dest: string, options?: RestoreAsOf): Promise<RepositoryRestoreResult>;
  /** Verifies backups (see the subclasses); with `source`, compares the newest (or `id`) with a data directory. */
  abstract verify(options?: VerifyOptions & { id?: string }): Promise<{ id: string; report: VerifyReport }[]>;
  /** Removes backups outside the retention (and, in format 2, the data only they used). */
  abstract expire(options: ExpireOptions): Promise<ExpireResult>;
  /** Repository totals. */
  abstract totals(records?: BackupRecord[]): Promise<RepositoryTotals>;
  /** Releases what the repository holds open (the native handle and its keys). */
  close(): void {}

  /** Format 2 only: what format 1 cannot do fails with a code and the way on (migrate). */
  protected formatTwoOnly(what: string): never {
    throw new BackupError(
      'ERR_UNSUPPORTED_FORMAT',
      `${this.dir} is a format-1 repository, which has no ${what}: convert it with powdb-backup migrate`,
    );
  }

  /** Copies the retained WAL of a sync-enabled directory that the repository lacks (format 2). */
  async archive(_dataDir: string, _options?: OperationOptions & { lockWaitMs?: number }): Promise<ArchiveResult> {
    return this.formatTwoOnly('WAL archive');
  }
  /** One backup as a plain reference-format full backup (format 2). */
  async export(_dest: string, _options?: RestoreAsOf): Promise<{ id: string; manifest: BackupManifest }> {
    return this.formatTwoOnly('export');
  }
  /** Rebuilds the index from the packs (format 2). */
  async repair(_options?: Pick<OperationOptions, 'signal'>): Promise<RepairResult> {
    return this.formatTwoOnly('index to repair');
  }
  /** Adds a password to an encrypted repository; returns its key id (format 2). */
  async addKey(_newPassword: string, _kdf?: KdfParams): Promise<string> {
    return this.formatTwoOnly('keys');
  }
  /** The keys of an encrypted repository (format 2). */
  async listKeys(): Promise<{ id: string; created: string; current: boolean }[]> {
    return this.formatTwoOnly('keys');
  }
  /** Removes a key, never the last (format 2). */
  async removeKey(_id: string): Promise<void> {
    return this.formatTwoOnly('keys');
  }

  /** The catalog, or (with `id`) one backup and its chain, full backup first. */
  async info(id?: string): Promise<{ backups: BackupRecord[]; chain?: BackupRecord[]; totals: RepositoryTotals }> {
    const backups = await this.list();
    const totals = await this.totals(backups);
    return id === undefined
      ? { backups, totals }
      : { backups, chain: this.chain(backups, this.pick(backups, id).id), totals };
  }

  /** A backup and its ancestors, full backup first. */
  chain(records: BackupRecord[], id: string): BackupRecord[] {
    const byId = new Map(records.map((r) => [r.id, r]));
    const chain: BackupRecord[] = [];
    for (let at = byId.get(id); at; at = at.parent ? byId.get(at.parent) : undefined) chain.unshift(at);
    if (chain[0]?.type !== 'full')
      throw new BackupError('ERR_CHAIN_BROKEN', `backup ${id} has no full backup at the root of its chain`);
    return chain;
  }

  /** The newest backup at or before `asOf` (default: the newest of all). */
  pick(records: BackupRecord[], asOf?: string | bigint | Date): BackupRecord {
    if (records.length === 0) throw new BackupError('ERR_NO_BACKUP', `repository ${this.dir} holds no backup`);
    if (asOf === undefined) return records.at(-1)!;
    const target = parseTarget(asOf, new Set(records.map((r) => r.id)));
    const fits = (r: BackupRecord) =>
      'id' in target
        ? r.id === target.id
        : 'lsn' in target
          ? r.source_lsn <= target.lsn
          : Date.parse(r.created) <= target.time;
    const found = records.filter(fits).at(-1);
    if (!found) {
      const first = records[0]!;
      throw new BackupError(
        'ERR_NO_BACKUP',
        `no backup at or before ${String(asOf)}: the first is ${first.id} (${first.created}, LSN ${first.source_lsn})`,
      );
    }
    return found;
  }

  /**
   * The backups an expire keeps: the newest `retainFull` full backups with
   * everything built on them, and (with `retainDays`) every younger backup
   * with its ancestors.
   */
  retained(records: BackupRecord[], options: ExpireOptions): Set<string> {
    if (!Number.isInteger(options.retainFull) || options.retainFull < 1) {
      throw new BackupError('ERR_INVALID_ARG', '--retain-full must be a whole number of at least 1');
    }
    const kept = new Set<string>();
    const fulls = records
      .filter((r) => r.type === 'full')
      .slice(-options.retainFull)
      .map((r) => r.id);
    for (const r of records) {
      const chain = this.chain(records, r.id).map((c) => c.id);
      const young =
        options.retainDays !== undefined && Date.now() - Date.parse(r.created) <= options.retainDays * 86_400_000;
      if (fulls.includes(chain[0]!) || young) chain.forEach((id) => kept.add(id));
    }
    return kept;
  }
}
