// A backup into a format-2 repository: every file of the data directory
// stored as chunks (only new ones written), then the index, then, last, the
// snapshot: a backup is visible only once whole.
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cancellable, type Cancellation } from '../../common/abort.js';
import { sourceSyncBlock } from '../../chain/backup.js';
import { crashPoint } from '../../common/crashpoint.js';
import { assertUnchanged, manifestCatalogVersion, type DataDirSnapshot } from '../../source/datadir.js';
import { withBackupSource } from '../../source/backup-source.js';
import { BackupError } from '../../common/errors.js';
import { native } from '../../native/core.js';
import { repoNative, type StoredFile } from '../../native/repo.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../../common/pool.js';
import { Progress } from '../../common/progress.js';
import { newBackupId, nextBackup, sortRecords, type BackupRecord, type RepositoryBackupOptions } from '../base.js';
import { SNAPSHOTS, SNAPSHOT_VERSION, formatSnapshot, type Snapshot } from '../snapshot.js';
import { assertSameSource, currentSource, sourceKey, type BackupSource } from '../source.js';
import { LEGACY_SOURCE, continuedBackups, listSources, namedSourceOf, sourcesOf } from '../sources.js';
import { assertSameLineage, readSyncIdentity, sameLineage, type SyncIdentity } from '../../source/sync.js';
import type { As, PackedContext } from './context.js';

const PAGE = 4096n;

/** Where a new backup stands: its id, type and parent in the catalog, and what it must match. */
interface Plan {
  id: string;
  type: BackupRecord['type'];
  parent: BackupRecord | undefined;
  /** The parent's snapshot: its files' lists and change hints, for reuse. */
  parentSnapshot: Snapshot | undefined;
  /** The backups of its source, which it continues. */
  continued: BackupRecord[];
  at: Date;
  identity: SyncIdentity | undefined;
  /** Absent only for a migrated backup that recorded none. */
  origin: BackupSource | undefined;
  sameDatabase: boolean;
  /** A migrated backup keeps its id (a clash is an error, not a new id). */
  keepsId: boolean;
}

/**
 * Stores every file of `dataDir` as chunks (only new chunks are written),
 * then publishes the packs' index and, last, the snapshot: a backup is
 * visible only once whole. `type` and `parent` record where it stands in
 * the catalog; any backup restores on its own.
 */
export async function backup(
  repo: PackedContext,
  dataDir: string,
  options: RepositoryBackupOptions & As = {},
): Promise<BackupRecord> {
  return repo.alongside('backup', options.lockWaitMs ?? 0, () =>
    cancellable(options.signal, async (cancel) => {
      const plan = await planBackup(repo, dataDir, options);
      // Under the hold, after the catalog: every chunk of the parent (its index precedes its snapshot) deduplicates.
      await repoNative.refreshToWrite(repo.handle.handle);
      if (plan.identity) await archiveFirst(repo, dataDir, plan.identity, cancel);
      try {
        // A local repository stages an online copy beside itself; one on object storage, in the temporary directory.
        const stagingParent = repo.handle.remote ? undefined : dirname(repo.dir);
        return await withBackupSource(dataDir, options.server, stagingParent, async (source, online) => {
          if (online) options.onOnline?.(online);
          assertSameLineage(plan.identity, source.sync, `${dataDir}: sync identity changed while backing up`);
          crashPoint('lock-acquired');
          const stored = await storeFiles(repo, source, plan, options, cancel);
          await assertUnchanged(source);
          cancel.check(); // the last moment an abort leaves nothing visible
          return await publish(repo, source, stored, plan);
        });
      } catch (err) {
        // Packs not yet in an index are settled by the next expire or repair; committed ones wait for its prune.
        repoNative.abandon(repo.handle.handle);
        throw err;
      }
    }),
  );
}

/**
 * `--same-database` without `--source` means what it meant before a repository held many sources: this directory
 * is the repository's database, so the backup continues its only source, under that source's key. With several
 * sources it must say which.
 */
function onlySourceFor(records: BackupRecord[], dataDir: string, options: RepositoryBackupOptions): string | undefined {
  if (!options.sameDatabase) return undefined;
  const groups = sourcesOf(records);
  if (groups.size > 1) {
    throw new BackupError(
      'ERR_SOURCE_AMBIGUOUS',
      `--same-database: repository holds backups of ${groups.size} sources; name the one ${dataDir} continues with --source <key>; the sources: ${listSources(groups)}`,
    );
  }
  const only = [...groups.keys()][0];
  return only === undefined || only === LEGACY_SOURCE ? undefined : only;
}

/**
 * Reads the catalog and decides the backup's id, type and parent among the
 * backups of its source (a database no source matches starts a new one with
 * a full backup); refuses a named source's backup of another database.
 */
async function planBackup(repo: PackedContext, dataDir: string, options: RepositoryBackupOptions & As): Promise<Plan> {
  // A damaged snapshot (verify names it) must not stop new backups; expire does stop on it.
  const { heads, unreadable } = await repo.readHeads();
  for (const u of unreadable) {
    process.emitWarning(`backup ${u.id} cannot be read (${u.err.message}); run verify`, 'PowdbBackupWarning');
  }
  const records = sortRecords(heads.map((s) => s.record));
  const identity = await readSyncIdentity(dataDir);
  // A migration carries its records over, sources included (it reads a scratch copy).
  const origin = options.as
    ? options.as.source
    : await currentSource(dataDir, identity?.database_id, options.source ?? onlySourceFor(records, dataDir, options));
  const continued = origin ? continuedBackups(records, origin) : [];
  let { type, parent } = options.as
    ? { type: options.as.type, parent: records.find((r) => r.id === options.as!.parent) }
    : nextBackup(continued, options.type);
  const sameDatabase = options.sameDatabase || options.as !== undefined;
  if (origin) assertSameSource(continued, origin, undefined, sameDatabase);
  const named = origin && continued.length === 0 ? namedSourceOf(records, origin) : undefined;
  if (named !== undefined) {
    process.emitWarning(
      `${dataDir}: starting source ${sourceKey(origin!)} with a full backup, while source ${named} backs up this database: give --source ${named} to continue it`,
      'PowdbBackupWarning',
    );
  }
  // A new sync lineage (sync enabled, or a forked copy backed up here) starts a new chain.
  const parentSync = heads.find((s) => s.record.id === parent?.id)?.sync?.identity;
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
  const id = options.as?.id ?? newBackupId([...records, ...unreadable], at, type);
  const parentSnapshot = parent ? await repo.snapshot(parent.id) : undefined;
  return { id, type, parent, parentSnapshot, continued, at, identity, origin, sameDatabase, keepsId: !!options.as };
}

/**
 * A backup of a sync-enabled directory archives its retained WAL first (a
 * failure there is reported, and does not stop the backup: `archive` and
 * `verify` say more).
 */
async function archiveFirst(repo: PackedContext, dataDir: string, identity: SyncIdentity, cancel: Cancellation) {
  await repo.wal.archive(dataDir, identity, cancel.token).catch((err: unknown) => {
    if ((err as BackupError).code === 'ERR_ABORTED') throw err;
    repoNative.abandon(repo.handle.handle);
    process.emitWarning(`archiving the WAL of ${dataDir} failed: ${(err as Error).message}`, 'PowdbBackupWarning');
  });
}

/** Stores each file as chunks; an increment reuses the ids of its parent's chunks that did not change (by their change hints). */
async function storeFiles(
  repo: PackedContext,
  source: DataDirSnapshot,
  plan: Plan,
  options: RepositoryBackupOptions,
  cancel: Cancellation,
): Promise<StoredFile[]> {
  const parentFiles = new Map((plan.parentSnapshot?.files ?? []).map((f) => [f.name, f]));
  const total = source.files.reduce((sum, f) => sum + f.size, 0n);
  const progress = new Progress('backup', source.files.length, total, options.onProgress, cancel.token);
  return mapLimit(source.files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
    cancel.check();
    progress.fileStarted(f.name, f.size);
    const before = parentFiles.get(f.name);
    const reuse = before?.hints && before.heap === f.paged ? { lists: before.lists, hints: before.hints } : undefined;
    const how = { heap: f.paged, hints: true, parent: reuse };
    const result = await repoNative.storeFile(repo.handle.handle, f.path, how, cancel.token);
    progress.fileDone(f.name, f.size);
    crashPoint('file-done');
    return result;
  });
}

/** Commits the packs' index, then writes the snapshot: from then on the backup is visible. */
async function publish(
  repo: PackedContext,
  source: DataDirSnapshot,
  stored: StoredFile[],
  plan: Plan,
): Promise<BackupRecord> {
  const commit = await repoNative.commit(repo.handle.handle);
  crashPoint('packs-committed');
  const heapPages = source.files.reduce((n, f, i) => (f.paged ? n + stored[i]!.len / PAGE : n), 0n);
  const sourceLsn = stored.reduce((max, s) => (s.maxLsn > max ? s.maxLsn : max), source.catalogLsn);
  if (plan.origin) assertSameSource(plan.continued, plan.origin, sourceLsn, plan.sameDatabase);
  const catalog = source.files.find((f) => f.name === 'catalog.bin');
  const catalogHash = source.sync && catalog && (await native.hashFile(catalog.path)).blake3Hex;
  const record: BackupRecord = {
    id: plan.id,
    type: plan.type,
    parent: plan.parent?.id ?? null,
    base_source_lsn: plan.parent?.source_lsn ?? null,
    source_lsn: sourceLsn,
    created: plan.at.toISOString(),
    bytes: commit.storedBytes,
    files: source.files.length,
    pages: Number(heapPages),
    logical_bytes: stored.reduce((sum, s) => sum + s.len, 0n),
    stored_bytes: commit.storedBytes,
    ...(plan.origin ? { source: plan.origin } : {}),
  };
  const snapshot: Snapshot = {
    snapshot_version: SNAPSHOT_VERSION,
    record,
    created_unix_secs: BigInt(Math.floor(plan.at.getTime() / 1000)),
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
  await repo.confirmLock();
  await writeSnapshot(repo, snapshot, plan);
  crashPoint('manifest-written');
  return record;
}

/** Longer than two writers' gap between finding an id free and writing it (a HEAD and a PUT). */
const RACE_SETTLE_MS = 1000;

/**
 * Publishes the snapshot under its id; when a backup beside this one took
 * that id first (both started within one second), under the next free one.
 * Where the store ignores `If-None-Match`, both may "create" the one id and
 * the later write wins: each reads its snapshot back once the race is over,
 * and the one overwritten takes the next id.
 */
async function writeSnapshot(repo: PackedContext, snapshot: Snapshot, plan: Plan): Promise<void> {
  const settles = (await repo.conditionalWrites()) !== true;
  for (let attempt = 0; ; attempt++) {
    const key = `${SNAPSHOTS}${snapshot.record.id}`;
    const text = Buffer.from(formatSnapshot(snapshot));
    try {
      await repoNative.writeObject(repo.handle.handle, key, text);
      if (!settles) return;
      await sleep(RACE_SETTLE_MS);
      if ((await repoNative.readObject(repo.handle.handle, key)).equals(text)) return;
    } catch (err) {
      if ((err as BackupError).code !== 'EEXIST') throw err;
    }
    if (plan.keepsId || attempt >= 100) {
      throw new BackupError(
        'EEXIST',
        `backup ${snapshot.record.id} exists already in ${repo.dir}: run the backup again`,
      );
    }
    const taken = (await repo.snapshotIds()).map((id) => ({ id }));
    snapshot.record.id = newBackupId(taken, plan.at, plan.type);
  }
}
