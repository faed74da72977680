// The backup a target names within its source, and for a point between backups the archived WAL to replay after
// it: where a restore, `tables` and `dump` start.
import { repoNative } from '../../native/repo.js';
import type { ArchivedSegment } from '../archive.js';
import type { RestoreAsOf } from '../base.js';
import { lineageOf, planRestore, type PitrPlan } from '../pitr.js';
import type { Snapshot } from '../snapshot.js';
import type { PackedContext } from './context.js';

export interface Point {
  snapshot: Snapshot;
  /** The replay past the backup, when the target lies after it. */
  replay?: PitrPlan;
  /** The archived WAL segments. */
  archive: ArchivedSegment[];
  /** Every backup id, the unreadable ones too. */
  ids: string[];
}

export async function pickPoint(repo: PackedContext, options: Pick<RestoreAsOf, 'asOf' | 'source'>): Promise<Point> {
  await repoNative.refresh(repo.handle.handle);
  const { heads, unreadable } = await repo.readHeads();
  const archive = heads.some((s) => s.sync) ? await repo.wal.records() : [];
  const ids = [...heads.map((s) => s.record.id), ...unreadable.map((u) => u.id)];
  const candidates = repo.snapshotsToPick(heads, options.asOf, options.source, ids);
  const plan = planRestore(candidates, options.asOf, (s) => lineageOf(s, archive), ids);
  const snapshot = plan
    ? await repo.snapshot(plan.base.record.id)
    : await repo.pickSnapshot(options.asOf, options.source);
  return { snapshot, ...(plan?.replay ? { replay: plan.replay } : {}), archive, ids };
}
