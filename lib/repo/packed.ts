import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cancellable } from '../abort.js';
import { sourceSyncBlock } from '../backup.js';
import { crashPoint } from '../crashpoint.js';
import { assertUnchanged, manifestCatalogVersion, withDataDir } from '../datadir.js';
import { BackupError } from '../errors.js';
import { FORMAT_VERSION, MANIFEST_FILE, formatBackupManifest, type BackupManifest } from '../manifest.js';
import {
  native,
  repoNative,
  type KdfParams,
  type RepairResult,
  type PruneStats,
  type RepoHandle,
  type StoreOptions,
} from '../native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../pool.js';
import { Progress, type OperationOptions } from '../progress.js';
import { buildAtomically, writeFileDurably } from '../staging.js';
import type { VerifyOptions, VerifyProblem, VerifyReport } from '../verify.js';
import {
  RepositoryBase,
  newBackupId,
  nextBackup,
  sortRecords,
  type BackupRecord,
  type ExpireOptions,
  type ExpireResult,
  type RepositoryTotals,
  type RestoreAsOf,
  type RepositoryBackupOptions,
  type RepositoryRestoreResult,
  parseTime,
  resolvedTarget,
} from './base.js';
import { withRepoLock } from './legacy.js';
import { describeHold, whileRenewing, withHold } from './holds.js';
import { WalArchive, expiredRecords, keyOf, summarize, type ArchiveLineage, type ArchiveResult } from './archive.js';
import {
  REPLAY_LIMITS,
  lineageOf,
  planRestore,
  stoppedNote,
  type PitrPlan,
  type ReplayCut,
  type ReplaySummary,
} from './pitr.js';
import { walNative, type WalWritten } from '../wal-native.js';
import { TEMP_PREFIX, isFreshDestination, restoreInPlace, type InPlaceFile } from '../inplace.js';
import { assertDeltaFits } from '../restore.js';
import { compareSnapshotWithSource } from './source-compare.js';
import { SNAPSHOTS, SNAPSHOT_VERSION, formatSnapshot, parseSnapshot, type Snapshot } from './snapshot.js';
import { assertSameSource, currentSource } from './source.js';
import {
  applySyncMode,
  assertNoOverflow,
  assertSameLineage,
  assertSyncModeFits,
  heldByLiveProcess,
  readSyncIdentity,
  sameLineage,
} from '../sync.js';

/** How to create a repository. */
export interface InitOptions {
  /** 2 (default); 1 creates the older directory-per-backup format. */
  format?: 1 | 2;
  /** `zstd[:level]` (default `zstd`, level 1) or `none`. */
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

/** Backup options for a migration: the backup keeps its original identity. */
interface As {
  as?: Pick<BackupRecord, 'id' | 'type' | 'parent' | 'created'>;
}

const PAGE = 4096n;
/** Where packs are (crate/src/core/repo/index.rs). */
const PACKS = 'data/';

/** When a backup id says it was taken (to the second), if it has the usual shape. */
function idTime(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(id);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : undefined;
}
const passwordFrom = (given?: string) => given ?? process.env.POWDB_BACKUP_PASSWORD;

/** A repository on S3-compatible object storage rather than in a directory. */
export const isObjectStore = (location: string) => location.startsWith('s3://');

/** The lists that backups and archived segments use: what a prune keeps. */
function usedLists(snapshots: Snapshot[], archive: { lists: string[] }[]): string[] {
  return [
    ...new Set([
      ...snapshots.flatMap((s) => s.files.flatMap((f) => [...f.lists, ...(f.hints ?? [])])),
      ...archive.flatMap((r) => r.lists),
    ]),
  ];
}

const prunedOf = (p: PruneStats): NonNullable<ExpireResult['pruned']> => ({
  packsRemoved: p.packsRemoved,
  packsRepacked: p.packsRepacked,
  blobsRemoved: p.blobsRemoved,
  bytesFreed: BigInt(p.bytesFreed),
});

/** Refuses a URL of a store this package does not speak (`gs://x` must not become a local directory `gs:`). */
export function assertKnownScheme(location: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1];
  if (scheme !== undefined && scheme !== 's3') {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `${location}: repositories are local directories or s3://<bucket>/<prefix> (any S3-compatible store, with --endpoint); ${scheme}:// is not supported`,
    );
  }
}
/** The writer lock and the readers' and removers' holds: not backup data. */
const isLock = (key: string) => key === 'LOCK' || key.startsWith('locks/');
const store = (o: StoreOptions): StoreOptions | undefined =>
  o.endpoint || o.noConditionalWrites || o.concurrency
    ? { endpoint: o.endpoint, noConditionalWrites: o.noConditionalWrites, concurrency: o.concurrency }
    : undefined;

/** The progress of a repository verify, which reads every pack: the packs (`data/`) as one piece of work. */
async function packProgress(handle: number, options: OperationOptions, token?: number) {
  if (!options.onProgress) return undefined;
  const packs = await repoNative.listObjects(handle, PACKS).catch(() => []); // the check reports why
  if (packs.length === 0) return undefined;
  const bytes = packs.reduce((sum, p) => sum + p.size, 0n);
  const progress = new Progress('verify', packs.length, bytes, options.onProgress, token);
  progress.fileStarted(PACKS, bytes);
  return () => progress.fileDone(PACKS, bytes, packs.length);
}

/**
 * Format 2: every backup is a small sealed snapshot naming the chunks of its
 * files; chunks are stored once across all backups (keyed ids), compressed,
 * optionally encrypted, in packs with an index (docs/repository-format.md).
 * Any backup restores on its own; `expire` prunes what no backup uses.
 */
export class PackedRepository extends RepositoryBase {
  readonly format = 2 as const;

  private readonly wal: WalArchive;

  private constructor(
    readonly dir: string,
    private readonly handle: RepoHandle,
    private readonly password: string | undefined,
  ) {
    super();
    this.wal = new WalArchive(handle);
  }

  static async init(dir: string, options: InitOptions & StoreOptions = {}): Promise<PackedRepository> {
    const remote = isObjectStore(dir);
    // Checked before anything is created: a refused init leaves nothing behind.
    const password = options.encrypt ? passwordFrom(options.password) : undefined;
    if (options.encrypt && !password) {
      throw new BackupError(
        'ERR_PASSWORD_REQUIRED',
        'an encrypted repository needs a password, and it cannot be empty',
      );
    }
    const location = remote ? dir : resolve(dir);
    // The first directory mkdir created (parents included), removed again if init fails.
    const created = remote ? undefined : await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!remote && (await readdir(dir)).length > 0) {
      throw new BackupError('ERR_DEST_NOT_EMPTY', `repository directory ${dir} is not empty`);
    }
    try {
      const handle = await repoNative.init(
        location,
        options.compression ?? 'zstd',
        password,
        options.kdf,
        store(options),
      );
      return new PackedRepository(location, handle, password);
    } catch (err) {
      if (created !== undefined) await rm(created, { recursive: true, force: true });
      throw err;
    }
  }

  static async open(dir: string, options: OpenOptions & StoreOptions = {}): Promise<PackedRepository> {
    assertKnownScheme(dir);
    const password = passwordFrom(options.password);
    const location = isObjectStore(dir) ? dir : resolve(dir);
    const handle = await repoNative.open(location, password, store(options));
    return new PackedRepository(location, handle, password);
  }

  /**
   * Whether the store itself refuses to overwrite an object (see `info`);
   * null when these credentials cannot write the probe object that tells.
   */
  conditionalWrites(): Promise<boolean | null> {
    return repoNative.conditionalWrites(this.handle.handle);
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
    const text = (await repoNative.readObject(this.handle.handle, `${SNAPSHOTS}${id}`)).toString('utf8');
    return parseSnapshot(text, id);
  }

  private async snapshotIds(): Promise<string[]> {
    const objects = await repoNative.listObjects(this.handle.handle, SNAPSHOTS);
    return objects.map((o) => o.key.slice(SNAPSHOTS.length));
  }

  /** Every backup that can be read; one that cannot is named in a warning (verify reports it). */
  async list(): Promise<BackupRecord[]> {
    const { readable, unreadable } = await this.readSnapshots();
    for (const u of unreadable) {
      process.emitWarning(`backup ${u.id} cannot be read (${u.err.message}); run verify`, 'PowdbBackupWarning');
    }
    return sortRecords(readable.map((s) => s.record));
  }

  /** Every snapshot that can be read, and the errors of those that cannot. */
  private async readSnapshots(): Promise<{ readable: Snapshot[]; unreadable: { id: string; err: BackupError }[] }> {
    const read = await Promise.all(
      (await this.snapshotIds()).map((id) =>
        this.snapshot(id).then(
          (s) => ({ id, s }),
          (err: unknown) => ({ id, err: err as BackupError }),
        ),
      ),
    );
    return {
      readable: read.flatMap((r) => ('s' in r ? [r.s] : [])),
      unreadable: read.flatMap((r) => ('err' in r ? [r] : [])),
    };
  }

  /**
   * The snapshot a restore or export of `asOf` needs. A damaged snapshot of
   * another backup does not stand in the way unless it could be the answer
   * (it is newer than the pick, and the target is not a time before it).
   */
  private async pickSnapshot(asOf: RestoreAsOf['asOf']): Promise<Snapshot> {
    if (typeof asOf === 'string' && (await this.snapshotIds()).includes(asOf)) return this.snapshot(asOf);
    const { readable, unreadable } = await this.readSnapshots();
    const picked = this.pick(sortRecords(readable.map((s) => s.record)), asOf);
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
    return readable.find((s) => s.record.id === picked.id)!;
  }

  async totals(records?: BackupRecord[]): Promise<RepositoryTotals> {
    const all = records ?? (await this.list());
    const objects = await repoNative.listObjects(this.handle.handle, '');
    return {
      format: 2,
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

  private exclusively<T>(work: () => Promise<T>): Promise<T> {
    return this.handle.remote ? this.withLease(work) : withRepoLock(this.dir, work);
  }

  /**
   * Before a change others see (a snapshot published, snapshots removed):
   * on object storage, renewing the lease also proves it is still ours.
   */
  private async confirmLock(): Promise<void> {
    if (this.handle.remote) await repoNative.leaseRenew(this.handle.handle);
  }

  /** The writer lock on object storage: a leased LOCK object, renewed while `work` runs. */
  private async withLease<T>(work: () => Promise<T>): Promise<T> {
    const notice = await repoNative.leaseAcquire(this.handle.handle);
    if (notice) process.emitWarning(notice, 'PowdbBackupWarning');
    try {
      return await whileRenewing(() => repoNative.leaseRenew(this.handle.handle), work, true);
    } finally {
      await repoNative.leaseRelease(this.handle.handle);
    }
  }

  /**
   * Stores every file of `dataDir` as chunks (only new chunks are written),
   * then publishes the packs' index and, last, the snapshot: a backup is
   * visible only once whole. `type` and `parent` record where it stands in
   * the catalog; any backup restores on its own.
   */
  async backup(dataDir: string, options: RepositoryBackupOptions & As = {}): Promise<BackupRecord> {
    return this.exclusively(() =>
      cancellable(options.signal, async (cancel) => {
        await repoNative.settleUnindexed(this.handle.handle);
        // A damaged snapshot (verify names it) must not stop new backups; expire does stop on it.
        const { readable, unreadable } = await this.readSnapshots();
        for (const u of unreadable) {
          process.emitWarning(`backup ${u.id} cannot be read (${u.err.message}); run verify`, 'PowdbBackupWarning');
        }
        const records = sortRecords(readable.map((s) => s.record));
        const taken = [...records, ...unreadable];
        let { type, parent } = options.as
          ? { type: options.as.type, parent: records.find((r) => r.id === options.as!.parent) }
          : nextBackup(records, options.type);
        // A new sync lineage (sync enabled, or a forked copy backed up here) starts a new chain.
        const identity = await readSyncIdentity(dataDir);
        const origin = await currentSource(dataDir, identity?.database_id);
        const sameDatabase = options.sameDatabase || options.as !== undefined; // a migration carries records over
        assertSameSource(records, origin, undefined, sameDatabase);
        const parentSync = readable.find((s) => s.record.id === parent?.id)?.sync?.identity;
        if (parent && !sameLineage(parentSync, identity)) {
          assertSameLineage(
            parentSync,
            identity,
            `sync identity changed since backup ${parent.id}; take a full backup (--type full)`,
            options.type === undefined && !options.as,
          );
          process.emitWarning(
            `${dataDir}: sync identity changed since backup ${parent.id}; taking a full backup`,
            'PowdbBackupWarning',
          );
          type = 'full';
          parent = undefined;
        }
        const at = options.as ? new Date(options.as.created) : new Date();
        const id = options.as?.id ?? newBackupId(taken, at, type);
        // A backup of a sync-enabled directory archives its retained WAL first (a failure there is
        // reported, and does not stop the backup: `archive` and `verify` say more).
        if (identity) {
          await this.wal.archive(dataDir, identity, cancel.token).catch((err: unknown) => {
            if ((err as BackupError).code === 'ERR_ABORTED') throw err;
            repoNative.abandon(this.handle.handle);
            process.emitWarning(
              `archiving the WAL of ${dataDir} failed: ${(err as Error).message}`,
              'PowdbBackupWarning',
            );
          });
        }
        // An increment reuses the ids of its parent's chunks that did not change (by their change hints).
        const parentSnapshot = readable.find((s) => s.record.id === parent?.id);
        const parentFiles = new Map((parentSnapshot?.files ?? []).map((f) => [f.name, f]));
        try {
          return await withDataDir(dataDir, async (source) => {
            assertSameLineage(identity, source.sync, `${dataDir}: sync identity changed while backing up`);
            crashPoint('lock-acquired');
            const total = source.files.reduce((sum, f) => sum + f.size, 0n);
            const progress = new Progress('backup', source.files.length, total, options.onProgress, cancel.token);
            const stored = await mapLimit(source.files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
              cancel.check();
              progress.fileStarted(f.name, f.size);
              const before = parentFiles.get(f.name);
              const reuse =
                before?.hints && before.heap === f.paged ? { lists: before.lists, hints: before.hints } : undefined;
              const options = { heap: f.paged, hints: true, parent: reuse };
              const result = await repoNative.storeFile(this.handle.handle, f.path, options, cancel.token);
              progress.fileDone(f.name, f.size);
              crashPoint('file-done');
              return result;
            });
            await assertUnchanged(source);
            cancel.check(); // the last moment an abort leaves nothing visible
            const commit = await repoNative.commit(this.handle.handle);
            crashPoint('packs-committed');
            const heapPages = source.files.reduce((n, f, i) => (f.paged ? n + stored[i]!.len / PAGE : n), 0n);
            const sourceLsn = stored.reduce((max, s) => (s.maxLsn > max ? s.maxLsn : max), source.catalogLsn);
            assertSameSource(records, origin, sourceLsn, sameDatabase);
            const catalog = source.files.find((f) => f.name === 'catalog.bin');
            const catalogHash = source.sync && catalog && (await native.hashFile(catalog.path)).blake3Hex;
            const record: BackupRecord = {
              id,
              type,
              parent: parent?.id ?? null,
              base_source_lsn: parent?.source_lsn ?? null,
              source_lsn: sourceLsn,
              created: at.toISOString(),
              bytes: commit.storedBytes,
              files: source.files.length,
              pages: Number(heapPages),
              logical_bytes: stored.reduce((sum, s) => sum + s.len, 0n),
              stored_bytes: commit.storedBytes,
              source: origin,
            };
            const snapshot: Snapshot = {
              snapshot_version: SNAPSHOT_VERSION,
              record,
              created_unix_secs: BigInt(Math.floor(at.getTime() / 1000)),
              catalog_version: manifestCatalogVersion(source.catalogVersion),
              ...sourceSyncBlock(source, sourceLsn, catalogHash),
              files: source.files.map((f, i) => ({
                name: f.name,
                len: stored[i]!.len,
                heap: f.paged,
                lists: stored[i]!.lists,
                ...(stored[i]!.hints && { hints: stored[i]!.hints }),
              })),
            };
            const text = Buffer.from(formatSnapshot(snapshot));
            await this.confirmLock();
            await repoNative.writeObject(this.handle.handle, `${SNAPSHOTS}${id}`, text);
            crashPoint('manifest-written');
            return record;
          });
        } catch (err) {
          // Packs not yet in an index are removed by the next writer; committed ones wait for the next prune.
          repoNative.abandon(this.handle.handle);
          throw err;
        }
      }),
    );
  }

  /**
   * Writes every file of backup `id` into `staging`, all at once: files
   * backed up side by side share packs, and each pack is read once for all
   * of them. With `hash`, returns their BLAKE3s.
   */
  private async layDown(
    snapshot: Snapshot,
    staging: string,
    hash: boolean,
    options: OperationOptions,
    token: number | undefined,
    check: () => void,
  ): Promise<(string | null)[]> {
    const total = snapshot.files.reduce((sum, f) => sum + f.len, 0n);
    const progress = new Progress('restore', snapshot.files.length, total, options.onProgress, token);
    check();
    for (const f of snapshot.files) progress.fileStarted(f.name, f.len);
    const files = snapshot.files.map((f) => ({ lists: f.lists, len: f.len, dest: join(staging, f.name) }));
    const hashes = await repoNative.restoreFiles(this.handle.handle, files, hash, token);
    for (const f of snapshot.files) progress.fileDone(f.name, f.len);
    crashPoint('file-done');
    return hashes;
  }

  /**
   * Copies the retained WAL segments of the sync-enabled `dataDir` that the
   * repository does not have yet (see WalArchive.archive). Needs no lock on
   * the data directory; waits up to `lockWaitMs` (default 60 s) for the
   * repository's writer lock, so that it can run beside a backup. Fails with
   * ERR_SYNC_OVERFLOW, after archiving, when `wal.log` holds a record that
   * powdb-sync cannot archive (history stops there).
   */
  override async archive(
    dataDir: string,
    options: OperationOptions & { lockWaitMs?: number } = {},
  ): Promise<ArchiveResult> {
    const identity = await readSyncIdentity(dataDir);
    if (!identity) {
      throw new BackupError(
        'ERR_NOT_SYNC_ENABLED',
        `${dataDir} is not sync-enabled: it keeps no retained WAL to archive (enable it with powdb-cli sync-enable)`,
      );
    }
    const result = await this.waitingForLock(options.lockWaitMs ?? 60_000, () =>
      cancellable(options.signal, async (cancel) => {
        await repoNative.settleUnindexed(this.handle.handle);
        try {
          return await this.wal.archive(dataDir, identity, cancel.token);
        } catch (err) {
          repoNative.abandon(this.handle.handle);
          throw err;
        }
      }),
    );
    // The WAL of a running server is its own (never read it); a stopped one says why history stopped.
    if (!(await heldByLiveProcess(dataDir))) await assertNoOverflow(dataDir, result.ranges.at(-1)?.end_lsn);
    return result;
  }

  /** Runs `work` with the writer lock, retrying while another writer holds it, up to `waitMs`. */
  private async waitingForLock<T>(waitMs: number, work: () => Promise<T>): Promise<T> {
    const until = Date.now() + waitMs;
    for (;;) {
      try {
        return await this.exclusively(work);
      } catch (err) {
        if ((err as BackupError).code !== 'ERR_REPO_LOCKED' || Date.now() >= until) throw err;
      }
      await sleep(1000);
    }
  }

  /** The WAL archive, lineage by lineage. */
  async archiveInfo(): Promise<ArchiveLineage[]> {
    return summarize(await this.wal.records());
  }

  override async info(id?: string) {
    const base = await super.info(id);
    base.backups = await Promise.all(
      base.backups.map(async (r) => {
        const lists = (await this.snapshot(r.id)).files.flatMap((f) => [...f.lists, ...(f.hints ?? [])]);
        return { ...r, held_bytes: await repoNative.heldBytes(this.handle.handle, lists) };
      }),
    );
    const archive = await this.archiveInfo();
    const holds = (await repoNative.holds(this.handle.handle)).map(describeHold);
    return { ...base, ...(archive.length > 0 ? { archive } : {}), ...(holds.length > 0 ? { holds } : {}) };
  }

  async restore(dest: string, options: RestoreAsOf = {}): Promise<RepositoryRestoreResult> {
    return this.reading('restore', () => this.restoreHeld(dest, options));
  }

  private async restoreHeld(dest: string, options: RestoreAsOf): Promise<RepositoryRestoreResult> {
    await repoNative.refresh(this.handle.handle);
    const { readable, unreadable } = await this.readSnapshots();
    const archive = readable.some((s) => s.sync) ? await this.wal.records() : [];
    const ids = [...readable.map((s) => s.record.id), ...unreadable.map((u) => u.id)];
    const plan = planRestore(readable, options.asOf, (s) => lineageOf(s, archive), ids);
    const snapshot = plan?.base ?? (await this.pickSnapshot(options.asOf));
    const record = snapshot.record;
    const mode = options.syncMode ?? 'strip';
    assertSyncModeFits(snapshot.sync, mode);
    const newestArchived = lineageOf(snapshot, archive).at(-1)?.end_lsn;
    const withTarget = (r: RepositoryRestoreResult): RepositoryRestoreResult => {
      const target = resolvedTarget(options.asOf, record, r.sourceLsn, r.replay !== undefined, new Set(ids));
      return target ? { ...r, target } : r;
    };
    if (options.delta && !(await isFreshDestination(dest))) {
      assertDeltaFits(options);
      return withTarget(await this.restoreInPlace(dest, snapshot, plan?.replay, options));
    }
    const result = await cancellable(options.signal, (cancel) =>
      buildAtomically(dest, 'restore', async (staging) => {
        const replay = plan?.replay && (await this.prepareReplay(plan.replay, record, staging, cancel.token));
        const reached = replay?.cut.lsn ?? record.source_lsn;
        if (mode === 'preserve' && newestArchived !== undefined && reached < newestArchived) {
          throw new BackupError(
            'ERR_SYNC_MODE',
            `sync mode preserve would restore LSN ${reached} while the archive holds history up to ${newestArchived}: new writes would reuse its LSNs; use --sync-mode fork (or strip)`,
          );
        }
        await this.layDown(snapshot, staging, false, options, cancel.token, () => cancel.check());
        cancel.check();
        let summary: ReplaySummary | undefined;
        if (replay && plan?.replay) {
          const written = await walNative.writeWal(
            replay.paths,
            plan.replay.after,
            replay.cut.lsn,
            join(staging, 'wal.log'),
            cancel.token,
          );
          await rm(replay.dir, { recursive: true, force: true });
          summary = this.replaySummary(record, plan.replay, replay.cut, written, replay.paths.length);
        }
        const sync = await applySyncMode(staging, snapshot.sync, mode);
        return {
          dest,
          files: snapshot.files.length,
          bytes: snapshot.record.logical_bytes,
          increments: 0,
          sourceLsn: reached,
          ...(sync ? { sync } : {}),
          applied: [record.id],
          ...(summary ? { replay: summary } : {}),
        };
      }),
    );
    return withTarget(result);
  }

  /**
   * Delta restore of `snapshot` into the existing data directory `dest`
   * (lib/inplace.ts): each file compared with the snapshot chunk by chunk,
   * only what differs fetched and written; with `replay`, the archived WAL too.
   */
  private async restoreInPlace(
    dest: string,
    snapshot: Snapshot,
    replay: PitrPlan | undefined,
    options: RestoreAsOf,
  ): Promise<RepositoryRestoreResult> {
    const handle = this.handle.handle;
    const files: InPlaceFile[] = snapshot.files.map((f) => ({
      name: f.name,
      len: f.len,
      async update(path, temp, token) {
        const r = await repoNative.patchFile(handle, f, path, temp, token);
        if (r.rebuilt) await rename(temp, path);
        return {
          rewritten: r.rebuilt || r.pagesRewritten > 0n,
          pagesCompared: r.pagesCompared,
          pagesRewritten: r.pagesRewritten,
          bytesWritten: r.bytesWritten,
          bytesFetched: r.bytesFetched,
        };
      },
    }));
    const record = snapshot.record;
    let summary: ReplaySummary | undefined;
    const wal = replay
      ? async (path: string) => {
          const dir = join(dest, `${TEMP_PREFIX}segments`);
          await mkdir(dir, { mode: 0o700 });
          const paths = await this.wal.fetch(replay.segments, dir);
          const cut = await this.replayCut(paths, replay, record);
          const written = await walNative.writeWal(paths, replay.after, cut.lsn, path);
          await rm(dir, { recursive: true, force: true });
          summary = this.replaySummary(record, replay, cut, written, paths.length);
        }
      : undefined;
    const delta = await restoreInPlace(dest, files, { ...options, wal });
    const sync = await applySyncMode(dest, snapshot.sync, 'strip');
    return {
      dest,
      files: snapshot.files.length,
      bytes: record.logical_bytes,
      increments: 0,
      sourceLsn: summary?.cut_lsn ?? record.source_lsn,
      ...(sync ? { sync } : {}),
      applied: [record.id],
      ...(summary ? { replay: summary } : {}),
      delta,
    };
  }

  private replaySummary(
    record: BackupRecord,
    plan: PitrPlan,
    cut: ReplayCut,
    written: WalWritten,
    segments: number,
  ): ReplaySummary {
    return {
      base: record.id,
      base_lsn: record.source_lsn,
      target_lsn: plan.target,
      cut_lsn: cut.lsn,
      units: written.units,
      segments,
      notes: [REPLAY_LIMITS, ...(cut.stoppedBefore !== undefined ? [stoppedNote(cut.stoppedBefore, cut.lsn)] : [])],
    };
  }

  /**
   * Where a replay stops. PowDB 0.29 does not replay rows written after an
   * `alter table add column` correctly (rows lost or the open fails): a
   * replay never crosses one. The newest point stops before it (and says
   * so); an explicit target past it is refused, naming the safe point.
   */
  private async replayCut(paths: string[], plan: PitrPlan, record: BackupRecord, token?: number): Promise<ReplayCut> {
    const cut = await walNative.cut(paths, plan.after, plan.target, token);
    if (cut.addColumn == null) return { lsn: cut.lsn };
    if (plan.newest) return { lsn: cut.safe, stoppedBefore: cut.addColumn };
    throw new BackupError(
      'ERR_REPLAY_UNSAFE',
      `the archived WAL from backup ${record.id} (LSN ${record.source_lsn}) to LSN ${plan.target} crosses an alter table add column at LSN ${cut.addColumn}, ` +
        `which PowDB 0.29 does not replay correctly (rows can be lost, or the first open fails); the newest safe point from this backup is LSN ${cut.safe}. ` +
        'To restore past the alter, back up after it and restore from that backup.',
    );
  }

  /** Fetches the segments a replay needs into `staging` and finds where it stops. */
  private async prepareReplay(
    plan: PitrPlan,
    record: BackupRecord,
    staging: string,
    token: number | undefined,
  ): Promise<{ dir: string; paths: string[]; cut: ReplayCut }> {
    const dir = join(staging, '.powdb-replay-segments');
    await mkdir(dir, { mode: 0o700 });
    const paths = await this.wal.fetch(plan.segments, dir, token);
    return { dir, paths, cut: await this.replayCut(paths, plan, record, token) };
  }

  /**
   * Writes backup `asOf` (default: the newest) as a plain full backup in the
   * reference format (manifest.json, files, BLAKE3) into `dest`.
   */
  override async export(dest: string, options: RestoreAsOf = {}): Promise<{ id: string; manifest: BackupManifest }> {
    return this.reading('export', () => this.exportHeld(dest, options));
  }

  private async exportHeld(dest: string, options: RestoreAsOf): Promise<{ id: string; manifest: BackupManifest }> {
    await repoNative.refresh(this.handle.handle);
    const snapshot = await this.pickSnapshot(options.asOf);
    const record = snapshot.record;
    return cancellable(options.signal, (cancel) =>
      buildAtomically(dest, 'backup', async (staging) => {
        const hashes = await this.layDown(snapshot, staging, true, options, cancel.token, () => cancel.check());
        const manifest: BackupManifest = {
          format_version: FORMAT_VERSION,
          created_unix_secs: snapshot.created_unix_secs,
          source_lsn: record.source_lsn,
          catalog_version: snapshot.catalog_version,
          ...(snapshot.sync ? { sync: snapshot.sync } : {}),
          files: snapshot.files.map((f, i) => ({ name: f.name, len: f.len, blake3_hex: hashes[i]! })),
        };
        cancel.check();
        await writeFileDurably(join(staging, MANIFEST_FILE), formatBackupManifest(manifest));
        return { id: record.id, manifest };
      }),
    );
  }

  /**
   * Reads every pack and checks every chunk against its id, then resolves
   * each backup's files: a report for the repository (every damaged object),
   * then one per backup (only the problems that affect it). Snapshots that
   * cannot be read are reported by id. With `source`, instead compares
   * backup `id` (default: the newest) with that stopped data directory.
   */
  async verify(options: VerifyOptions & { id?: string } = {}): Promise<{ id: string; report: VerifyReport }[]> {
    return this.reading('verify', () => this.verifyHeld(options));
  }

  private async verifyHeld(options: VerifyOptions & { id?: string }): Promise<{ id: string; report: VerifyReport }[]> {
    if (options.source !== undefined) {
      const source = options.source;
      return cancellable(options.signal, async (cancel) => {
        await repoNative.refresh(this.handle.handle);
        const snapshot = await this.pickSnapshot(options.id);
        const errors = await compareSnapshotWithSource(this.handle, snapshot, source, cancel.token, options.onProgress);
        const checks = errors.length === 0 ? [`${source}: every file and page is identical to the backup`] : [];
        return [{ id: snapshot.record.id, report: { ok: errors.length === 0, checks, errors } }];
      });
    }
    return cancellable(options.signal, async (cancel) => {
      await repoNative.refresh(this.handle.handle);
      const ids = options.id ? [options.id] : await this.snapshotIds();
      const unreadable: { id: string; report: VerifyReport }[] = [];
      const snapshots: Snapshot[] = [];
      for (const id of ids) {
        try {
          snapshots.push(await this.snapshot(id));
        } catch (err) {
          const e = err as BackupError;
          unreadable.push({
            id,
            report: { ok: false, checks: [], errors: [{ code: e.code, message: e.message, file: id }] },
          });
        }
      }
      const backups = snapshots.map((s) => ({
        id: s.record.id,
        files: s.files.flatMap((f) => [
          { name: f.name, lists: f.lists },
          ...(f.hints ? [{ name: `${f.name} (change hints)`, lists: f.hints }] : []),
        ]),
      }));
      const packsRead = await packProgress(this.handle.handle, options, cancel.token);
      const result = await repoNative.check(this.handle.handle, backups, cancel.token);
      packsRead?.();
      if (result.warning) process.emitWarning(`${this.dir}: ${result.warning}`, 'PowdbBackupWarning');
      const damage = result.problems.filter((p) => !p.code.startsWith('NOTE_'));
      const notes = result.problems.filter((p) => p.code.startsWith('NOTE_')).map((p) => p.message);
      if (result.damageRecorded > 0) {
        notes.push(
          `recorded ${result.damageRecorded} damaged chunk location(s): new backups store those chunks again from their source; \`repair\` drops them and keeps what is intact`,
        );
      }
      const repository = {
        id: 'repository',
        report: {
          ok: damage.length === 0,
          checks: [`${result.packs} packs, ${result.blobs} chunks read and checked against their ids`, ...notes],
          errors: damage.map((p) => ({ ...p, file: this.dir })),
        },
      };
      const reports = result.backups.map((b) => {
        const files = snapshots.find((s) => s.record.id === b.id)!.files.length;
        const errors: VerifyProblem[] = b.problems.map((p) => ({ ...p, file: p.message.split(':')[0]! }));
        return {
          id: b.id,
          // Said only of a backup without problems: never "intact" beside a failure.
          report: {
            ok: errors.length === 0,
            checks: errors.length ? [] : [`${files} files: every chunk present and intact`],
            errors,
          },
        };
      });
      const archive = options.id ? undefined : await this.wal.verify(cancel.token);
      return [
        repository,
        ...(archive ? [{ id: 'archive', report: archive }] : []),
        ...unreadable,
        ...reports.sort((a, b) => (a.id < b.id ? -1 : 1)),
      ];
    });
  }

  /**
   * Removes the snapshots outside the retention (each removal is atomic),
   * then prunes: chunks no remaining backup uses go, sparse packs are
   * repacked. Killed at any moment, every remaining backup still restores.
   */
  async expire(options: ExpireOptions): Promise<ExpireResult> {
    const plan = async () => {
      const records = await this.list();
      const kept = this.retained(records, options);
      return { records, kept, removed: records.filter((r) => !kept.has(r.id)).map((r) => r.id) };
    };
    if (options.dryRun) {
      const { records, kept, removed } = await plan();
      // What the prune would free if these backups went (the WAL archive's segments kept).
      const staying = (await this.snapshotIds()).filter((id) => !removed.includes(id));
      const remaining = await Promise.all(staying.map((id) => this.snapshot(id)));
      const archive = await this.wal.records();
      const p = await repoNative.prune(this.handle.handle, usedLists(remaining, archive), undefined, true);
      return { removed, kept: records.filter((r) => kept.has(r.id)).map((r) => r.id), pruned: prunedOf(p) };
    }
    // No reader may be reading what is about to go: expire fails while one does (holds.ts).
    const removing = (work: () => Promise<ExpireResult>) =>
      this.exclusively(() => withHold(this.handle.handle, this.dir, 'exclusive', 'expire', work));
    return removing(() =>
      cancellable(options.signal, async (cancel) => {
        // Refuses a damaged index before anything is removed (and clears what killed writers left).
        await repoNative.settleUnindexed(this.handle.handle);
        const { records, kept, removed } = await plan();
        await this.confirmLock();
        for (const id of [...removed].reverse()) {
          await repoNative.deleteObject(this.handle.handle, `${SNAPSHOTS}${id}`);
          crashPoint('expire-renamed');
        }
        // Every snapshot still present keeps its chunks; one that cannot be read stops the prune.
        const remaining = await Promise.all((await this.snapshotIds()).map((id) => this.snapshot(id)));
        const archive = await this.wal.records();
        const bases = remaining.flatMap((s) =>
          s.sync
            ? [
                {
                  database_id: s.sync.identity.database_id,
                  generation: s.sync.identity.primary_generation,
                  lsn: s.record.source_lsn,
                },
              ]
            : [],
        );
        const expired = new Set(expiredRecords(archive, bases));
        for (const r of expired) await repoNative.deleteObject(this.handle.handle, keyOf(r));
        const live = archive.filter((r) => !expired.has(r));
        const p = await repoNative.prune(this.handle.handle, usedLists(remaining, live), cancel.token);
        return {
          removed,
          kept: records.filter((r) => kept.has(r.id)).map((r) => r.id),
          archiveRemoved: [...expired].map((r) => r.file),
          pruned: prunedOf(p),
        };
      }),
    );
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
  override async repair(options: Pick<OperationOptions, 'signal'> = {}): Promise<RepairResult> {
    return this.exclusively(() =>
      withHold(this.handle.handle, this.dir, 'exclusive', 'repair', () =>
        cancellable(options.signal, async (cancel) => {
          // Restores need only a backup's lists (its change hints are advisory).
          const { readable } = await this.readSnapshots();
          const backups = sortRecords(readable.map((s) => s.record)).map((r) => ({
            id: r.id,
            files: readable.find((s) => s.record.id === r.id)!.files.map((f) => ({ name: f.name, lists: f.lists })),
          }));
          return repoNative.repair(this.handle.handle, backups, cancel.token);
        }),
      ),
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
  override async removeKey(id: string): Promise<void> {
    this.assertEncrypted();
    await this.exclusively(() => repoNative.keyRemove(this.handle.handle, id));
  }
}
