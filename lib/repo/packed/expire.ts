// expire of a format-2 repository: the snapshots outside the retention
// removed, then the prune of what no remaining backup or archived segment uses.
import { cancellable } from '../../common/abort.js';
import { crashPoint } from '../../common/crashpoint.js';
import { repoNative, type PruneStats } from '../../native/repo.js';
import { type ExpireOptions, type ExpireResult } from '../base.js';
import { expiredRecords, keyOf } from '../archive.js';
import { SNAPSHOTS, type Snapshot } from '../snapshot.js';
import type { PackedContext } from './context.js';

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

/**
 * Removes the snapshots outside the retention (each removal is atomic),
 * then prunes: chunks no remaining backup uses go, sparse packs are
 * repacked. Killed at any moment, every remaining backup still restores.
 */
export async function expire(repo: PackedContext, options: ExpireOptions): Promise<ExpireResult> {
  const plan = async () => {
    const records = await repo.list();
    const kept = repo.retained(records, options);
    return { records, kept, removed: records.filter((r) => !kept.has(r.id)).map((r) => r.id) };
  };
  if (options.dryRun) {
    const { records, kept, removed } = await plan();
    // What the prune would free if these backups went (the WAL archive's segments kept).
    const staying = (await repo.snapshotIds()).filter((id) => !removed.includes(id));
    const remaining = await Promise.all(staying.map((id) => repo.snapshot(id)));
    const archive = await repo.wal.records();
    const p = await repoNative.prune(repo.handle.handle, usedLists(remaining, archive), undefined, true);
    return { removed, kept: records.filter((r) => kept.has(r.id)).map((r) => r.id), pruned: prunedOf(p) };
  }
  // No backup, archive run or reader may be using what is about to go: expire waits or fails while one does.
  return repo.alone('expire', options.lockWaitMs ?? 0, () =>
    cancellable(options.signal, async (cancel) => {
      // Refuses a damaged index before anything is removed (and clears what killed writers left).
      await repoNative.settleUnindexed(repo.handle.handle);
      const { records, kept, removed } = await plan();
      await repo.confirmLock();
      for (const id of [...removed].reverse()) {
        await repoNative.deleteObject(repo.handle.handle, `${SNAPSHOTS}${id}`);
        crashPoint('expire-renamed');
      }
      // Every snapshot still present keeps its chunks; one that cannot be read stops the prune.
      const remaining = await Promise.all((await repo.snapshotIds()).map((id) => repo.snapshot(id)));
      const archive = await repo.wal.records();
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
      for (const r of expired) await repoNative.deleteObject(repo.handle.handle, keyOf(r));
      const live = archive.filter((r) => !expired.has(r));
      const p = await repoNative.prune(repo.handle.handle, usedLists(remaining, live), cancel.token);
      return {
        removed,
        kept: records.filter((r) => kept.has(r.id)).map((r) => r.id),
        archiveRemoved: [...expired].map((r) => r.file),
        pruned: prunedOf(p),
      };
    }),
  );
}
