import { BackupError } from '../common/errors.js';
import type { BackupOptions } from '../chain/backup.js';
import type { OperationOptions } from '../common/progress.js';
import type { RestoreResult } from '../restore/restore.js';
import type { VerifyOptions, VerifyReport } from '../chain/verify.js';
import type { ReplaySummary } from './pitr.js';
import type { ArchiveResult } from './archive.js';
import type { ArchiveEveryOptions, ArchiveEveryResult, ArchiveOptions } from './archive-round.js';
import type { KdfParams, RepairResult } from '../native/repo.js';
import type { BackupManifest } from '../chain/manifest.js';
import type { BackupRecord, BackupSource, BackupType } from './record.js';
import { parseTarget, type RestoreAsOf, type RestoreTarget } from './target.js';
import { backupsToPick, sourcesOf } from './sources.js';
import type { ListOptions, TablesInfo } from '../restore/tables-list.js';
import type { DumpOptions, DumpResult } from '../restore/dump.js';

export { backupId, newBackupId, sortRecords, type BackupRecord, type BackupSource, type BackupType } from './record.js';
export { parseTarget, parseTime, resolvedTarget, type RestoreAsOf, type RestoreTarget, type Target } from './target.js';

/** A backup into a repository: its catalog type, and whether a changed source is the same database. */
export interface RepositoryBackupOptions extends BackupOptions {
  type?: BackupType;
  /**
   * The source's name (recorded in the backup): its backups are continued
   * whatever the path or host; by default the source is the sync database
   * id, else the host and path.
   */
  source?: string;
  /** The data directory holds the database of its source, although its path, host or LSN say otherwise. */
  sameDatabase?: boolean;
  /** Format 2: how long to wait for an expire, repair or key removal that holds the repository alone (default 0: fail at once with ERR_REPO_LOCKED). */
  lockWaitMs?: number;
}

/** A source of the repository for `info`: its key, the source its newest backup records, its backups oldest first. */
export interface SourceSummary {
  key: string;
  source?: BackupSource;
  backups: string[];
}

/** What `info` reports: the catalog and its sources, or (with an id) one backup's chain too. */
export interface RepositoryInfo {
  backups: BackupRecord[];
  sources: SourceSummary[];
  chain?: BackupRecord[];
  totals: RepositoryTotals;
}

/** Repository totals for `info`. */
export interface RepositoryTotals {
  format: 1 | 2 | 3 | 4;
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
  /** Per source. */
  retainFull: number;
  /** Expire the backups of this source only (its key); default every source. */
  source?: string;
  /** Aborts the prune between steps (what is done stays consistent). */
  signal?: AbortSignal;
  retainDays?: number;
  dryRun?: boolean;
  /** Format 2: how long to wait for running backups, readers or another expire (default 0: fail at once with ERR_REPO_LOCKED). */
  lockWaitMs?: number;
}

export interface ExpireResult {
  removed: string[];
  kept: string[];
  /** Format 2: the archived WAL segments removed (no kept backup replays them). */
  archiveRemoved?: string[];
  /** Format 2: what the prune freed. */
  pruned?: { packsRemoved: number; packsRepacked: number; blobsRemoved: number; bytesFreed: bigint };
}

/** A repository restore: the backup applied, the WAL replayed, and (with `asOf`) how the target resolved. */
export type RepositoryRestoreResult = RestoreResult & {
  applied: string[];
  replay?: ReplaySummary;
  target?: RestoreTarget;
};

/** What `tables` lists: the tables of one backup (or point), which backup, and its LSN. */
export type RepositoryTables = TablesInfo & { backup: string; lsn: bigint };

/** Options of `tables`: the backup or point, only some tables, row counts. */
export type TablesOptions = ListOptions & Pick<RestoreAsOf, 'asOf' | 'source'>;

/** What `dump` wrote, from which backup, at which LSN. */
export type RepositoryDump = DumpResult & { backup: string; lsn: bigint };

/** Options of `dump`: the backup or point, the table, the format and where the rows go. */
export type RepositoryDumpOptions = DumpOptions & Pick<RestoreAsOf, 'asOf' | 'source'>;

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

/** A repository of backups; format 1 (directories in the reference format) or 2 to 4 (packs). */
export abstract class RepositoryBase {
  abstract readonly dir: string;
  abstract readonly format: 1 | 2 | 3 | 4;

  /** Every backup, oldest first. */
  abstract list(): Promise<BackupRecord[]>;
  /** Backs `dataDir` up: `incr` (default) on the newest backup, `diff` on the newest full, or `full`. */
  abstract backup(dataDir: string, options?: RepositoryBackupOptions): Promise<BackupRecord>;
  /** Restores the newest backup at or before `asOf` (default: the newest) into `dest`. */
  abstract restore(dest: string, options?: RestoreAsOf): Promise<RepositoryRestoreResult>;
  /** The tables of the backup or point `asOf` names (default the newest), read from its catalog alone. */
  abstract tables(options?: TablesOptions): Promise<RepositoryTables>;
  /** Writes the rows of one table of the backup or point `asOf` names (default the newest); see dump.ts. */
  abstract dump(options: RepositoryDumpOptions): Promise<RepositoryDump>;
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
  async archive(_dataDir: string, _options?: ArchiveOptions): Promise<ArchiveResult> {
    return this.formatTwoOnly('WAL archive');
  }
  /** Archives a live sync-enabled server's WAL every interval until the signal aborts (format 2). */
  async archiveEvery(_dataDir: string, _options: ArchiveEveryOptions): Promise<ArchiveEveryResult> {
    return this.formatTwoOnly('WAL archive');
  }
  /** One backup as a plain reference-format full backup (format 2). */
  async export(_dest: string, _options?: RestoreAsOf): Promise<{ id: string; manifest: BackupManifest }> {
    return this.formatTwoOnly('export');
  }
  /** Rebuilds the index from the packs (format 2). */
  async repair(_options?: Pick<OperationOptions, 'signal'> & { lockWaitMs?: number }): Promise<RepairResult> {
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
  /**
   * Removes a key, never the last (format 2). It takes the repository alone: `lockWaitMs` waits that long for
   * backups and readers to finish (default: fail at once with ERR_REPO_LOCKED).
   */
  async removeKey(_id: string, _options: { lockWaitMs?: number } = {}): Promise<void> {
    return this.formatTwoOnly('keys');
  }

  /** The catalog and its sources, or (with `id`) one backup and its chain, full backup first. */
  async info(id?: string): Promise<RepositoryInfo> {
    return this.infoOf(await this.list(), id);
  }

  /** `info` of the catalog `backups` (oldest first). */
  protected async infoOf(backups: BackupRecord[], id?: string): Promise<RepositoryInfo> {
    const totals = await this.totals(backups);
    const sources = [...this.sources(backups)].map(([key, own]) => ({
      key,
      ...(own.at(-1)!.source ? { source: own.at(-1)!.source! } : {}),
      backups: own.map((r) => r.id),
    }));
    return id === undefined
      ? { backups, sources, totals }
      : { backups, sources, chain: this.chain(backups, this.pick(backups, id).id), totals };
  }

  /** The backups of each source, keyed by source key (see sources.ts). */
  sources(records: BackupRecord[]): Map<string, BackupRecord[]> {
    return sourcesOf(records);
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

  /** The newest backup of `source` at or before `asOf` (default: the newest); an id names any source's backup. */
  pick(all: BackupRecord[], asOf?: string | bigint | Date, source?: string): BackupRecord {
    if (all.length === 0) throw new BackupError('ERR_NO_BACKUP', `repository ${this.dir} holds no backup`);
    const records = backupsToPick(this.sources(all), all, asOf, source, this.dir);
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
   * The backups an expire keeps, source by source: the newest `retainFull`
   * full backups with everything built on them, and (with `retainDays`)
   * every younger backup with its ancestors. With `source`, every backup of
   * the other sources is kept.
   */
  retained(records: BackupRecord[], options: ExpireOptions): Set<string> {
    if (!Number.isInteger(options.retainFull) || options.retainFull < 1) {
      throw new BackupError('ERR_INVALID_ARG', '--retain-full must be a whole number of at least 1');
    }
    const groups = this.sources(records);
    // An unknown source is refused, naming the sources there are.
    if (options.source !== undefined) backupsToPick(groups, records, undefined, options.source, this.dir);
    const untouched = new Set<string>();
    const fulls = new Set<string>();
    for (const [key, backups] of groups) {
      if (options.source !== undefined && key !== options.source) backups.forEach((r) => untouched.add(r.id));
      else
        backups
          .filter((r) => r.type === 'full')
          .slice(-options.retainFull)
          .forEach((r) => fulls.add(r.id));
    }
    const kept = new Set<string>();
    for (const r of records) {
      const chain = this.chain(records, r.id).map((c) => c.id);
      const young =
        options.retainDays !== undefined && Date.now() - Date.parse(r.created) <= options.retainDays * 86_400_000;
      if (untouched.has(r.id) || fulls.has(chain[0]!) || young) chain.forEach((id) => kept.add(id));
    }
    return kept;
  }
}
