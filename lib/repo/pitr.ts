import { BackupError } from '../common/errors.js';
import { sortRecords } from './record.js';
import { parseTarget, type RestoreAsOf } from './target.js';
import type { ArchivedSegment } from './archive.js';
import type { SnapshotHead } from './snapshot.js';

/**
 * Point-in-time recovery between backups: the newest backup at or before the
 * target, then the archived WAL after its `source_lsn` up to the target.
 */
export interface PitrPlan {
  /** The base backup's LSN: replay starts after it. */
  after: bigint;
  /** The LSN to stop at or before (at the last point where no transaction is open). */
  target: bigint;
  /** The archived segments that hold `(after, target]`, in order. */
  segments: ArchivedSegment[];
  /** No target was given: the newest point (which stops before an unsafe alter rather than fail). */
  newest?: boolean;
}

/** What a restore replayed from the archive (the CLI prints it). */
export interface ReplaySummary {
  /** The base backup and its LSN. */
  base: string;
  base_lsn: bigint;
  /** The target as an LSN, and where the replay stops: the last point at or before it with no transaction open. */
  target_lsn: bigint;
  cut_lsn: bigint;
  /** Records written into the restored `wal.log`, from how many archived segments. */
  units: bigint;
  segments: number;
  /** What the replay cannot bring back, and engine limits it runs into. */
  notes: string[];
}

/** What the WAL cannot bring back, said after every restore that replays it. */
export const REPLAY_LIMITS =
  'the WAL brings back rows and table DDL; indexes created after the base backup are rebuilt by the first open only if the catalog names them; views.bin, auth.json, expression indexes and links are as of the base backup';

/** Where a replay stops; `stoppedBefore`: the add column it stopped short of (newest-point restores). */
export interface ReplayCut {
  lsn: bigint;
  stoppedBefore?: bigint;
}

/** PowDB 0.29 does not replay rows written after `alter table add column` correctly: a replay stops before it. */
export const stoppedNote = (alter: bigint, lsn: bigint) =>
  `the replay stopped at LSN ${lsn}, before the alter table add column at LSN ${alter}: PowDB 0.29 does not replay rows written after one correctly (rows can be lost, or the first open fails); to restore past it, back up after the alter and restore from that backup`;

/** The segments that continue `after` without a gap, in order (the archive is sorted by LSN). */
export function reachable(archive: ArchivedSegment[], after: bigint): ArchivedSegment[] {
  const run: ArchivedSegment[] = [];
  let next = after + 1n;
  for (const s of archive) {
    if (s.end_lsn < next) continue;
    if (s.start_lsn > next) break;
    run.push(s);
    next = s.end_lsn + 1n;
  }
  return run;
}

/** The newest point a replay from `after` can reach: the last transaction boundary of the reachable run. */
export function newestReachable(run: ArchivedSegment[], after: bigint): bigint {
  for (const s of [...run].reverse()) if (s.last_boundary !== null && s.last_boundary > after) return s.last_boundary;
  return after;
}

/** The archive records of the lineage `snapshot` belongs to (empty for a plain one). */
export function lineageOf(snapshot: SnapshotHead, archive: ArchivedSegment[]): ArchivedSegment[] {
  const id = snapshot.sync?.identity;
  if (!id) return [];
  return archive.filter(
    (s) => s.database_id === id.database_id.toLowerCase() && s.primary_generation === id.primary_generation,
  );
}

/**
 * The base backup and the replay a restore `asOf` needs. A backup id, a
 * plain backup, or a target at a backup's own LSN need no replay; no
 * target means the newest point the archive reaches after the newest backup. An LSN
 * target past what the archive reaches without a gap is refused, naming the
 * newest reachable point; a time target maps to the newest LSN known to
 * exist by then (the base's, or the end of a segment archived by then).
 */
export function planRestore<S extends SnapshotHead>(
  snapshots: S[],
  asOf: RestoreAsOf['asOf'],
  archiveOf: (s: S) => ArchivedSegment[],
  /** Every backup id, the unreadable ones too (an id is never read as a time). */
  ids: string[] = snapshots.map((s) => s.record.id),
): { base: S; replay?: PitrPlan } | undefined {
  const records = sortRecords(snapshots.map((s) => s.record));
  if (asOf === undefined) {
    // The default is the newest point: the newest backup, then all the archive reaches after it.
    const newest = snapshots.find((s) => s.record.id === records.at(-1)?.id);
    if (!newest?.sync) return undefined;
    const after = newest.record.source_lsn;
    const run = reachable(archiveOf(newest), after);
    const lsn = newestReachable(run, after);
    return lsn > after
      ? { base: newest, replay: { after, target: lsn, segments: run.filter((s) => s.start_lsn <= lsn), newest: true } }
      : { base: newest };
  }
  const target = parseTarget(asOf, new Set(ids));
  if ('id' in target) return undefined;
  const fits = (s: S) =>
    'lsn' in target ? s.record.source_lsn <= target.lsn : Date.parse(s.record.created) <= target.time;
  const base = records
    .map((r) => snapshots.find((s) => s.record.id === r.id)!)
    .filter(fits)
    .at(-1);
  if (!base?.sync) return undefined;
  const after = base.record.source_lsn;
  const run = reachable(archiveOf(base), after);
  let lsn: bigint;
  if ('lsn' in target) {
    lsn = target.lsn;
    const reach = newestReachable(run, after);
    const end = run.at(-1)?.end_lsn ?? after;
    if (lsn > end) {
      const lineage = archiveOf(base);
      const later = lineage.find((s) => s.start_lsn > end + 1n);
      throw new BackupError(
        later && later.start_lsn <= lsn ? 'ERR_ARCHIVE_GAP' : 'ERR_BEYOND_ARCHIVE',
        later && later.start_lsn <= lsn
          ? `LSN ${lsn} is not reachable: the archive has no LSNs ${end + 1n}-${later.start_lsn - 1n}; the newest reachable point is LSN ${reach} (backup ${base.record.id}, then the archive)`
          : `LSN ${lsn} is beyond the archive; the newest reachable point is LSN ${reach} (backup ${base.record.id}, then the archive)`,
      );
    }
  } else {
    lsn = run
      .filter((s) => Date.parse(s.archived) <= target.time)
      .reduce((max, s) => (s.end_lsn > max ? s.end_lsn : max), after);
  }
  if (lsn <= after) return { base };
  return { base, replay: { after, target: lsn, segments: run.filter((s) => s.start_lsn <= lsn) } };
}
