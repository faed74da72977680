import { BackupError } from '../errors.js';
import type { BackupOptions } from '../backup.js';
import type { OperationOptions } from '../progress.js';
import type { RestoreOptions, RestoreResult } from '../restore.js';
import type { VerifyOptions, VerifyReport } from '../verify.js';
import type { ReplaySummary } from './pitr.js';

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

export function parseTarget(asOf: string | bigint | Date, ids: Set<string>): Target {
  if (asOf instanceof Date) return { time: asOf.getTime() };
  if (typeof asOf === 'bigint') return { lsn: asOf };
  if (ids.has(asOf)) return { id: asOf };
  if (/^\d+$/.test(asOf)) return { lsn: BigInt(asOf) };
  const time = Date.parse(asOf);
  if (Number.isNaN(time)) {
    throw new BackupError('ERR_INVALID_ARG', `--as-of ${asOf} is neither a backup id, an LSN nor an ISO 8601 time`);
  }
  return { time };
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
  abstract backup(dataDir: string, options?: BackupOptions & { type?: BackupType }): Promise<BackupRecord>;
  /** Restores the newest backup at or before `asOf` (default: the newest) into `dest`. */
  abstract restore(
    dest: string,
    options?: RestoreAsOf,
  ): Promise<RestoreResult & { applied: string[]; replay?: ReplaySummary }>;
  /** Verifies backups (see the subclasses); with `source`, compares the newest (or `id`) with a data directory. */
  abstract verify(options?: VerifyOptions & { id?: string }): Promise<{ id: string; report: VerifyReport }[]>;
  /** Removes backups outside the retention (and, in format 2, the data only they used). */
  abstract expire(options: ExpireOptions): Promise<ExpireResult>;
  /** Repository totals. */
  abstract totals(records?: BackupRecord[]): Promise<RepositoryTotals>;
  /** Releases what the repository holds open (the native handle and its keys). */
  close(): void {}

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
