// A restore from a format-2 repository: the snapshot the target names, laid
// down into a new directory (or patched into place with --delta), then the
// archived WAL up to the target.
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellable } from '../../common/abort.js';
import { BackupError } from '../../common/errors.js';
import { repoNative } from '../../native/repo.js';
import { buildAtomically } from '../../common/staging.js';
import { type BackupRecord, type RestoreAsOf, type RepositoryRestoreResult, resolvedTarget } from '../base.js';
import { REPLAY_LIMITS, lineageOf, stoppedNote, type PitrPlan, type ReplayCut, type ReplaySummary } from '../pitr.js';
import { walNative, type WalWritten } from '../../native/wal.js';
import { TEMP_PREFIX, isFreshDestination, restoreInPlace, type InPlaceFile } from '../../restore/inplace.js';
import { assertDeltaFits } from '../../restore/restore.js';
import type { Snapshot } from '../snapshot.js';
import { applySyncMode, assertSyncModeFits } from '../../source/sync.js';
import type { PackedContext } from './context.js';
import { pickPoint } from './point.js';
import { layDown } from './lay-down.js';
import { assertTableRestoreFits, tableChoices } from '../../restore/tables.js';
import { mergeTablesAt, restoreTablesAt } from './restore-tables.js';

/** Restores the backup or point in time `options.asOf` names into `dest` (new, or in place with `delta`). */
export async function restore(
  repo: PackedContext,
  dest: string,
  options: RestoreAsOf,
): Promise<RepositoryRestoreResult> {
  const plan = await pickPoint(repo, options);
  const { snapshot, archive, ids } = plan;
  const record = snapshot.record;
  const mode = options.syncMode ?? 'strip';
  assertSyncModeFits(snapshot.sync, mode);
  const newestArchived = lineageOf(snapshot, archive).at(-1)?.end_lsn;
  const withTarget = (r: RepositoryRestoreResult): RepositoryRestoreResult => {
    const target = resolvedTarget(options.asOf, record, r.sourceLsn, r.replay !== undefined, new Set(ids));
    return target ? { ...r, target } : r;
  };
  const choices = tableChoices(options);
  if (choices) {
    assertTableRestoreFits(options);
    const whole = plan.replay
      ? (scratch: string) =>
          restore(repo, scratch, { ...options, tables: undefined, rename: undefined, into: undefined })
      : undefined;
    if (options.into) return withTarget(await mergeTablesAt(repo, dest, snapshot, choices, options, whole));
    return withTarget(await restoreTablesAt(repo, dest, snapshot, choices, options, whole));
  }
  if (options.delta && !(await isFreshDestination(dest))) {
    assertDeltaFits(options);
    return withTarget(await patchInPlace(repo, dest, snapshot, plan.replay, options));
  }
  const result = await cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'restore', async (staging) => {
      const replay = plan.replay && (await prepareReplay(repo, plan.replay, record, staging, cancel.token));
      const reached = replay?.cut.lsn ?? record.source_lsn;
      if (mode === 'preserve' && newestArchived !== undefined && reached < newestArchived) {
        throw new BackupError(
          'ERR_SYNC_MODE',
          `sync mode preserve would restore LSN ${reached} while the archive holds history up to ${newestArchived}: new writes would reuse its LSNs; use --sync-mode fork (or strip)`,
        );
      }
      await layDown(repo, snapshot, staging, false, options, cancel.token, () => cancel.check());
      cancel.check();
      let summary: ReplaySummary | undefined;
      if (replay && plan.replay) {
        const written = await walNative.writeWal(
          replay.paths,
          plan.replay.after,
          replay.cut.lsn,
          join(staging, 'wal.log'),
          cancel.token,
        );
        await rm(replay.dir, { recursive: true, force: true });
        summary = replaySummary(record, plan.replay, replay.cut, written, replay.paths.length);
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
 * (lib/restore/inplace.ts): each file compared with the snapshot chunk by chunk,
 * only what differs fetched and written; with `replay`, the archived WAL too.
 */
async function patchInPlace(
  repo: PackedContext,
  dest: string,
  snapshot: Snapshot,
  replay: PitrPlan | undefined,
  options: RestoreAsOf,
): Promise<RepositoryRestoreResult> {
  const handle = repo.handle.handle;
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
        const paths = await repo.wal.fetch(replay.segments, dir);
        const cut = await replayCut(repo, paths, replay, record);
        const written = await walNative.writeWal(paths, replay.after, cut.lsn, path);
        await rm(dir, { recursive: true, force: true });
        summary = replaySummary(record, replay, cut, written, paths.length);
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

function replaySummary(
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
async function replayCut(
  repo: PackedContext,
  paths: string[],
  plan: PitrPlan,
  record: BackupRecord,
  token?: number,
): Promise<ReplayCut> {
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

async function prepareReplay(
  repo: PackedContext,
  plan: PitrPlan,
  record: BackupRecord,
  staging: string,
  token: number | undefined,
): Promise<{ dir: string; paths: string[]; cut: ReplayCut }> {
  const dir = join(staging, '.powdb-replay-segments');
  await mkdir(dir, { mode: 0o700 });
  const paths = await repo.wal.fetch(plan.segments, dir, token);
  return { dir, paths, cut: await replayCut(repo, paths, plan, record, token) };
}
