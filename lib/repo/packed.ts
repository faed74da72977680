import { cancellable } from '../common/abort.js';
import { mapLimit } from '../common/pool.js';
import { BackupError } from '../common/errors.js';
import type { BackupManifest } from '../chain/manifest.js';
import { repoNative, type KdfParams, type RepairResult, type RepoHandle, type StoreOptions } from '../native/repo.js';
import type { OperationOptions } from '../common/progress.js';
import type { VerifyOptions, VerifyReport } from '../chain/verify.js';
import {
  RepositoryBase,
  sortRecords,
  type BackupRecord,
  type ExpireOptions,
  type ExpireResult,
  type RepositoryTotals,
  type RestoreAsOf,
  type RepositoryBackupOptions,
  type RepositoryRestoreResult,
  type RepositoryTables,
  type RepositoryDump,
  type RepositoryDumpOptions,
  type TablesOptions,
  parseTime,
} from './base.js';
import { describeHold, releaseHold, waitingForLock, whileRenewing, withHold } from './holds.js';
import { WalArchive, summarize, type ArchiveLineage, type ArchiveResult } from './archive.js';
import { SNAPSHOTS, headOf, parseSnapshot, type Snapshot, type SnapshotHead } from './snapshot.js';
import {
  SUMMARY_AFTER,
  heldStillValid,
  listSummaries,
  readSummary,
  writeSummary,
  type SummaryEntry,
} from './summary.js';
import { backupsToPick } from './sources.js';
import type { As, Heads, PackedContext } from './packed/context.js';
import { archive } from './packed/archive.js';
import { archiveEvery } from './packed/archive-every.js';
import type { ArchiveEveryOptions, ArchiveEveryResult, ArchiveOptions } from './archive-round.js';
import { backup } from './packed/backup.js';
import { expire } from './packed/expire.js';
import { exportBackup } from './packed/export.js';
import { restore } from './packed/restore.js';
import { tablesAt } from './packed/tables.js';
import { dumpAt } from './packed/dump.js';
import { verify } from './packed/verify.js';

/** How to create a repository. */
export interface InitOptions {
  /**
   * 4 (default): packed, heap pages compressed as row deltas; 3: packed as powdb-backup read it before row deltas
   * (2 is taken as 3); 1: the older directory-per-backup format.
   */
  format?: 1 | 2 | 3 | 4;
  /** `zstd[:level]` (default `zstd`, level 3) or `none`. */
  compression?: string;
  /** Encrypt everything with a key wrapped by `password` (or POWDB_BACKUP_PASSWORD). */
  encrypt?: boolean;
  password?: string;
  /** argon2id cost (default 46 MiB, one pass); tests lower it. */
  kdf?: KdfParams;
}

export interface OpenOptions {
  /** An encrypted repository's password (default: POWDB_BACKUP_PASSWORD). */
  password?: string;
}

/** When a backup id says it was taken (to the second), if it has the usual shape. */
function idTime(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(id);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : undefined;
}
/** Snapshots read at once (object storage answers each in milliseconds: enough to overlap them). */
const SNAPSHOT_READS = 32;
/** Where the index objects are (their listing dates held bytes in the catalog summary). */
const INDEX = 'index/';
const passwordFrom = (given?: string) => given ?? process.env.POWDB_BACKUP_PASSWORD;

/** The writer lock and the readers' and removers' holds: not backup data. */
const isLock = (key: string) => key === 'LOCK' || key.startsWith('locks/');
const store = (o: StoreOptions): StoreOptions | undefined =>
  o.endpoint || o.noConditionalWrites || o.concurrency
    ? { endpoint: o.endpoint, noConditionalWrites: o.noConditionalWrites, concurrency: o.concurrency }
    : undefined;

/**
 * Format 2: every backup is a small sealed snapshot naming the chunks of its
 * files; chunks are stored once across all backups (keyed ids), compressed,
 * optionally encrypted, in packs with an index (docs/repository-format.md).
 * Any backup restores on its own; `expire` prunes what no backup uses.
 */
export class PackedRepository extends RepositoryBase implements PackedContext {
  /** @internal The WAL archive (the operations in packed/ use it). */
  readonly wal: WalArchive;

  private constructor(
    readonly dir: string,
    /** @internal The native repository. */
    readonly handle: RepoHandle,
    private readonly password: string | undefined,
  ) {
    super();
    this.wal = new WalArchive(handle);
  }

  /** Creates a repository; the storage makes its own room (a local directory: created, and must be empty). */
  static async init(dir: string, options: InitOptions & StoreOptions = {}): Promise<PackedRepository> {
    // Checked before anything is created: a refused init leaves nothing behind.
    const password = options.encrypt ? passwordFrom(options.password) : undefined;
    if (options.encrypt && !password) {
      throw new BackupError(
        'ERR_PASSWORD_REQUIRED',
        'an encrypted repository needs a password, and it cannot be empty',
      );
    }
    const { resolved } = repoNative.locate(dir);
    const handle = await repoNative.init(
      resolved,
      options.compression ?? 'zstd',
      password,
      options.kdf,
      store(options),
      options.format === 2 || options.format === 3 ? 3 : undefined,
    );
    return new PackedRepository(resolved, handle, password);
  }

  static async open(dir: string, options: OpenOptions & StoreOptions = {}): Promise<PackedRepository> {
    const password = passwordFrom(options.password);
    const { resolved } = repoNative.locate(dir);
    const handle = await repoNative.open(resolved, password, store(options));
    return new PackedRepository(resolved, handle, password);
  }

  /**
   * Whether the store itself refuses to overwrite an object (see `info`);
   * null when these credentials cannot write the probe object that tells.
   */
  conditionalWrites(): Promise<boolean | null> {
    return repoNative.conditionalWrites(this.handle.handle);
  }

  /** 2, 3 (chunks compressed together in blocks) or 4 (heap pages in them as row deltas; what `init` makes). */
  get format(): 2 | 3 | 4 {
    const f = this.handle.format;
    return f === 2 || f === 3 ? f : 4;
  }

  get encrypted(): boolean {
    return this.handle.encryption !== 'none';
  }

  private closed = false;

  override close(): void {
    if (this.closed) return;
    this.closed = true;
    repoNative.close(this.handle.handle);
    // Every later call fails with a code of its own, instead of the addon's bare "InvalidArg".
    Object.defineProperty(this.handle, 'handle', {
      get: () => {
        throw new BackupError('ERR_REPO_CLOSED', `repository ${this.dir} was closed: open it again (Repository.open)`);
      },
    });
  }

  async snapshot(id: string): Promise<Snapshot> {
    return parseSnapshot(await this.snapshotText(id), id);
  }

  private async snapshotText(id: string): Promise<string> {
    return (await repoNative.readObject(this.handle.handle, `${SNAPSHOTS}${id}`)).toString('utf8');
  }

  async snapshotIds(): Promise<string[]> {
    const objects = await repoNative.listObjects(this.handle.handle, SNAPSHOTS);
    return objects.map((o) => o.key.slice(SNAPSHOTS.length));
  }

  /** Every backup that can be read; one that cannot is named in a warning (verify reports it). */
  async list(): Promise<BackupRecord[]> {
    const { heads: readable, unreadable } = await this.readHeads();
    for (const u of unreadable) {
      process.emitWarning(`backup ${u.id} cannot be read (${u.err.message}); run verify`, 'PowdbBackupWarning');
    }
    return sortRecords(readable.map((s) => s.record));
  }

  /** Every snapshot that can be read, each from its own object, and the errors of those that cannot. */
  async readSnapshots(): Promise<{ readable: Snapshot[]; unreadable: { id: string; err: BackupError }[] }> {
    // A bounded number in flight: ten thousand reads at once cost more in garbage collection than in reading.
    const read = await mapLimit(await this.snapshotIds(), SNAPSHOT_READS, (id) =>
      this.snapshot(id).then(
        (s) => ({ id, s }),
        (err: unknown) => ({ id, err: err as BackupError }),
      ),
    );
    return {
      readable: read.flatMap((r) => ('s' in r ? [r.s] : [])),
      unreadable: read.flatMap((r) => ('err' in r ? [r] : [])),
    };
  }

  /**
   * Every backup's snapshot head (record and sync block), and the errors of the snapshots that cannot be read. The
   * heads the catalog summary holds (same id, same stored size) come from it; the others are read on their own, and
   * when that was many, a new summary is written (lib/repo/summary.ts). With `held`, also what each backup holds
   * (`info`): from the summary while the index objects it was counted with are all still there, else counted.
   */
  async readHeads(options: { held?: boolean } = {}): Promise<Heads> {
    const h = this.handle.handle;
    const [listed, summaries] = await Promise.all([repoNative.listObjects(h, SNAPSHOTS), listSummaries(h)]);
    const summary = await readSummary(h, summaries[0]?.key);
    let indexKeys: Set<string> | undefined;
    if (options.held) {
      // After the snapshots are listed: the index of each of them was published before it.
      await repoNative.refresh(h);
      indexKeys = new Set((await repoNative.listObjects(h, INDEX)).map((o) => o.key));
    }
    const heldValid = indexKeys === undefined || heldStillValid(summary.heldWith, indexKeys);
    let missed = 0;
    // What counting held bytes needs of a snapshot read (its record and blob lists), not the snapshot itself.
    const toCount: Counted[] = [];
    type Read = { id: string; entry: SummaryEntry } | { id: string; err: BackupError };
    const read = await mapLimit(listed, SNAPSHOT_READS, async (o): Promise<Read> => {
      const id = o.key.slice(SNAPSHOTS.length);
      const hit = summary.entries.get(id);
      const usable = hit !== undefined && hit.size === o.size;
      if (usable && !(options.held && (hit.held === undefined || !heldValid))) {
        return { id, entry: heldValid ? hit : { ...hit, held: undefined } };
      }
      missed++;
      try {
        const snapshot = await this.snapshot(id);
        if (options.held) toCount.push({ record: snapshot.record, lists: listsOf(snapshot) });
        return { id, entry: { id, size: o.size, head: headOf(snapshot) } };
      } catch (err) {
        return { id, err: err as BackupError };
      }
    });
    const entries = read.flatMap((r) => ('entry' in r ? [r.entry] : []));
    if (toCount.length > 0) {
      const counted = await this.countHeld(toCount);
      for (const e of entries) e.held ??= counted.get(e.id);
    }
    if (missed >= SUMMARY_AFTER) {
      const heldWith = indexKeys ? [...indexKeys] : heldValid ? summary.heldWith : undefined;
      await writeSummary(
        h,
        entries,
        heldWith,
        summaries.map((o) => o.key),
      );
    }
    return {
      heads: entries.map((e) => e.head),
      unreadable: read.flatMap((r) => ('err' in r ? [{ id: r.id, err: r.err }] : [])),
      held: new Map(entries.flatMap((e) => (e.held === undefined ? [] : [[e.id, e.held] as const]))),
    };
  }

  /** What each of `snapshots` holds, counted by the core (source by source: consecutive backups share lists). */
  private async countHeld(snapshots: Counted[]): Promise<Map<string, bigint>> {
    const order = [...this.sources(sortRecords(snapshots.map((s) => s.record))).values()].flat();
    const byId = new Map(snapshots.map((s) => [s.record.id, s.lists]));
    const held = await repoNative.heldBytes(
      this.handle.handle,
      order.map((r) => byId.get(r.id)!),
    );
    return new Map(order.map((r, i) => [r.id, held[i]!]));
  }

  /**
   * The snapshot a restore or export of `asOf` needs. A damaged snapshot of
   * another backup does not stand in the way unless it could be the answer
   * (it is newer than the pick, and the target is not a time before it).
   */
  async pickSnapshot(asOf: RestoreAsOf['asOf'], source?: string): Promise<Snapshot> {
    if (typeof asOf === 'string' && source === undefined && (await this.snapshotIds()).includes(asOf)) {
      return this.snapshot(asOf);
    }
    const { heads, unreadable } = await this.readHeads();
    const picked = this.pick(sortRecords(heads.map((s) => s.record)), asOf, source);
    const targetTime =
      asOf instanceof Date ? asOf.getTime() : typeof asOf === 'string' && !/^\d+$/.test(asOf) ? parseTime(asOf)! : NaN;
    for (const r of unreadable) {
      const taken = idTime(r.id);
      const older = taken !== undefined && taken + 1000 <= Date.parse(picked.created);
      const after = taken !== undefined && taken > targetTime;
      if (!older && !after) {
        throw new BackupError(
          r.err.code,
          `backup ${r.id} cannot be read and may be the one asked for (${r.err.message}); name a backup by id to restore another`,
        );
      }
    }
    return this.snapshot(picked.id);
  }

  /**
   * Of `readable`, the snapshots a restore of `asOf` picks among: those of
   * one source (see sources.ts). `ids`: every backup id, so that an id of an
   * unreadable backup is refused as such (by pickSnapshot), not as ambiguous.
   */
  snapshotsToPick<S extends SnapshotHead>(
    readable: S[],
    asOf: RestoreAsOf['asOf'],
    source: string | undefined,
    ids: string[],
  ): S[] {
    if (source === undefined && typeof asOf === 'string' && ids.includes(asOf)) return readable;
    const records = sortRecords(readable.map((s) => s.record));
    const picked = new Set(backupsToPick(this.sources(records), records, asOf, source, this.dir).map((r) => r.id));
    return readable.filter((s) => picked.has(s.record.id));
  }

  async totals(records?: BackupRecord[]): Promise<RepositoryTotals> {
    const all = records ?? (await this.list());
    const objects = await repoNative.listObjects(this.handle.handle, '');
    return {
      format: this.format,
      compression: this.handle.compression,
      encryption: this.handle.encryption,
      backups: all.length,
      logical_bytes: all.reduce((s, r) => s + r.logical_bytes, 0n),
      stored_bytes: objects.filter((o) => !isLock(o.key)).reduce((s, o) => s + o.size, 0n),
      ...(this.handle.remote ? { conditional_writes: await this.conditionalWrites() } : {}),
    };
  }

  /** Runs a reader's `work` under a shared hold (see holds.ts). */
  private reading<T>(operation: string, work: () => Promise<T>): Promise<T> {
    return withHold(this.handle.handle, this.dir, 'shared', operation, work);
  }

  /** Write sessions of this handle, one after the other: the native handle packs for one session at a time. */
  private sessions: Promise<unknown> = Promise.resolve();
  /** Renews what the session under way holds (see confirmLock). */
  private renewing: (() => Promise<void>) | undefined;

  private oneAtATime<T>(renew: () => Promise<void>, work: () => Promise<T>): Promise<T> {
    const run = async () => {
      this.renewing = renew;
      try {
        // A renewal that failed (the hold or lease lapsed, or was taken) fails the session: it publishes nothing.
        return await whileRenewing(renew, work, true);
      } finally {
        this.renewing = undefined;
      }
    };
    const next = this.sessions.then(run, run);
    this.sessions = next.catch(() => undefined);
    return next;
  }

  /**
   * Runs a backup's or archive run's `work` beside other writers (restic's
   * lock model): under a shared hold, published before the index is read
   * and renewed until the snapshot is published, so that no prune removes a
   * chunk it deduplicates against. Waits up to `lockWaitMs` for a writer that
   * holds the repository alone (expire, repair, key removal); then, or at
   * once (0), ERR_REPO_LOCKED names it.
   */
  async alongside<T>(operation: string, lockWaitMs: number, work: () => Promise<T>): Promise<T> {
    const handle = this.handle.handle;
    const owner = await waitingForLock(lockWaitMs, () => repoNative.holdAcquire(handle, 'shared', operation));
    try {
      return await this.oneAtATime(() => repoNative.holdRenew(handle, owner), work);
    } finally {
      await releaseHold(handle, this.dir, operation, owner);
    }
  }

  /**
   * Runs `work` holding the repository alone: the writer lock (one expire,
   * repair or key removal at a time; a flock, or a lease renewed meanwhile)
   * and an exclusive hold (no backup, archive run or reader beside it).
   * Waits up to `lockWaitMs` for those it conflicts with.
   */
  async alone<T>(operation: string, lockWaitMs: number, work: () => Promise<T>): Promise<T> {
    const handle = this.handle.handle;
    const owner = await waitingForLock(lockWaitMs, async () => {
      const notice = await repoNative.writerLock(handle);
      if (notice) process.emitWarning(notice, 'PowdbBackupWarning');
      try {
        return await repoNative.holdAcquire(handle, 'exclusive', operation);
      } catch (err) {
        await repoNative.writerUnlock(handle);
        throw err;
      }
    });
    const renew = async () => {
      await repoNative.writerRenew(handle);
      await repoNative.holdRenew(handle, owner);
    };
    try {
      return await this.oneAtATime(renew, work);
    } finally {
      await releaseHold(handle, this.dir, operation, owner);
      await repoNative.writerUnlock(handle);
    }
  }

  /**
   * Before a change others see (a snapshot published, snapshots removed):
   * renewing the session's hold and lease also proves they are still ours.
   */
  async confirmLock(): Promise<void> {
    await this.renewing?.();
  }

  /** Copies the retained WAL segments of `dataDir` not archived yet (see packed/archive.ts). */
  override async archive(dataDir: string, options: ArchiveOptions = {}): Promise<ArchiveResult> {
    return archive(this, dataDir, options);
  }

  /** Archives a live sync-enabled server's WAL every interval until the signal aborts (see packed/archive-every.ts). */
  override async archiveEvery(dataDir: string, options: ArchiveEveryOptions): Promise<ArchiveEveryResult> {
    return archiveEvery(this, dataDir, options);
  }

  /** The WAL archive, lineage by lineage. */
  async archiveInfo(): Promise<ArchiveLineage[]> {
    return summarize(await this.wal.records());
  }

  override async info(id?: string) {
    const { heads, unreadable, held } = await this.readHeads({ held: true });
    for (const u of unreadable) {
      process.emitWarning(`backup ${u.id} cannot be read (${u.err.message}); run verify`, 'PowdbBackupWarning');
    }
    const base = await this.infoOf(sortRecords(heads.map((s) => s.record)), id);
    base.backups = base.backups.map((r) => ({ ...r, held_bytes: held.get(r.id)! }));
    const archive = await this.archiveInfo();
    const holds = (await repoNative.holds(this.handle.handle)).map(describeHold);
    return { ...base, ...(archive.length > 0 ? { archive } : {}), ...(holds.length > 0 ? { holds } : {}) };
  }

  /**
   * Stores every file of `dataDir` as chunks (only new chunks are written),
   * then publishes the packs' index and, last, the snapshot: a backup is
   * visible only once whole. `type` and `parent` record where it stands in
   * the catalog; any backup restores on its own.
   */
  async backup(dataDir: string, options: RepositoryBackupOptions & As = {}): Promise<BackupRecord> {
    return backup(this, dataDir, options);
  }

  /**
   * Removes the snapshots outside the retention (each removal is atomic),
   * then prunes: chunks no remaining backup uses go, sparse packs are
   * repacked. Killed at any moment, every remaining backup still restores.
   */
  async expire(options: ExpireOptions): Promise<ExpireResult> {
    return expire(this, options);
  }

  async restore(dest: string, options: RestoreAsOf = {}): Promise<RepositoryRestoreResult> {
    return this.reading('restore', () => restore(this, dest, options));
  }

  async tables(options: TablesOptions = {}): Promise<RepositoryTables> {
    return this.reading('tables', () => tablesAt(this, options));
  }

  async dump(options: RepositoryDumpOptions): Promise<RepositoryDump> {
    return this.reading('dump', () => dumpAt(this, options));
  }

  /** Fetches the segments a replay needs into `staging` and finds where it stops. */

  /**
   * Writes backup `asOf` (default: the newest) as a plain full backup in the
   * reference format (manifest.json, files, BLAKE3) into `dest`.
   */
  override async export(dest: string, options: RestoreAsOf = {}): Promise<{ id: string; manifest: BackupManifest }> {
    return this.reading('export', () => exportBackup(this, dest, options));
  }

  /**
   * Reads every pack and checks every chunk against its id, then resolves
   * each backup's files: a report for the repository (every damaged object),
   * then one per backup (only the problems that affect it). Snapshots that
   * cannot be read are reported by id. With `source`, instead compares
   * backup `id` (default: the newest) with that stopped data directory.
   */
  async verify(options: VerifyOptions & { id?: string } = {}): Promise<{ id: string; report: VerifyReport }[]> {
    return this.reading('verify', () => verify(this, options));
  }

  /**
   * Rebuilds damaged index objects from the packs, then reads every pack as
   * verify does and drops damaged and missing chunks from the index: the
   * intact chunks of a damaged pack are copied into new packs before it is
   * removed, and the next backup stores the lost chunks again from its
   * source. Backups that need chunks that are gone are named and kept (a
   * later backup of a source that still holds the same content makes them
   * whole again). Readers are kept out while it runs, as during expire.
   */
  override async repair(
    options: Pick<OperationOptions, 'signal'> & { lockWaitMs?: number } = {},
  ): Promise<RepairResult> {
    return this.alone('repair', options.lockWaitMs ?? 0, () =>
      cancellable(options.signal, async (cancel) => {
        // Restores need only a backup's lists (its change hints are advisory).
        const { readable } = await this.readSnapshots();
        const backups = sortRecords(readable.map((s) => s.record)).map((r) => ({
          id: r.id,
          files: readable.find((s) => s.record.id === r.id)!.files.map((f) => ({ name: f.name, lists: f.lists })),
        }));
        return repoNative.repair(this.handle.handle, backups, cancel.token);
      }),
    );
  }

  private assertEncrypted(): void {
    if (!this.encrypted)
      throw new BackupError(
        'ERR_NOT_ENCRYPTED',
        `repository ${this.dir} is not encrypted: it has no keys or passwords`,
      );
  }

  /** Adds a password; returns the new key's id. */
  override async addKey(newPassword: string, kdf?: KdfParams): Promise<string> {
    this.assertEncrypted();
    return repoNative.keyAdd(this.handle.handle, this.password!, newPassword, kdf);
  }

  override async listKeys(): Promise<{ id: string; created: string; current: boolean }[]> {
    this.assertEncrypted();
    const keys = await repoNative.keyList(this.handle.handle);
    return keys.map((k) => ({
      id: k.id,
      created: new Date(Number(k.createdUnixSecs) * 1000).toISOString(),
      current: k.current,
    }));
  }

  /** Removes a key (never the last one). */
  override async removeKey(id: string, options: { lockWaitMs?: number } = {}): Promise<void> {
    this.assertEncrypted();
    await this.alone('key removal', options.lockWaitMs ?? 0, () => repoNative.keyRemove(this.handle.handle, id));
  }
}

/** A snapshot as counting its held bytes needs it. */
interface Counted {
  record: BackupRecord;
  lists: string[];
}

/** Every blob list a snapshot names: its files' chunk lists and change hints. */
const listsOf = (snapshot: Snapshot): string[] => snapshot.files.flatMap((f) => [...f.lists, ...(f.hints ?? [])]);
