// `dump` on a format-2 repository: at a backup, only the catalog and the table's heap are fetched from the packs;
// at a point between backups, the point is restored whole (replayed from the WAL archive) into the dump's scratch
// directory and recovered by the engine first.
import { dumpTable } from '../../restore/dump.js';
import type { RepositoryDump, RepositoryDumpOptions } from '../base.js';
import { lineageOf, planRestore } from '../pitr.js';
import type { PackedContext } from './context.js';
import { repoNative } from '../../native/repo.js';
import { snapshotSource } from './restore-tables.js';
import { restore } from './restore.js';

export async function dumpAt(repo: PackedContext, options: RepositoryDumpOptions): Promise<RepositoryDump> {
  await repoNative.refresh(repo.handle.handle);
  const { readable, unreadable } = await repo.readSnapshots();
  const archive = readable.some((s) => s.sync) ? await repo.wal.records() : [];
  const ids = [...readable.map((s) => s.record.id), ...unreadable.map((u) => u.id)];
  const candidates = repo.snapshotsToPick(readable, options.asOf, options.source, ids);
  const plan = planRestore(candidates, options.asOf, (s) => lineageOf(s, archive), ids);
  const snapshot = plan?.base ?? (await repo.pickSnapshot(options.asOf, options.source));
  const source = snapshotSource(repo, snapshot);
  const backup = snapshot.record.id;
  if (!plan?.replay) return { ...(await dumpTable(source, options)), backup, lsn: snapshot.record.source_lsn };
  let lsn = snapshot.record.source_lsn;
  const dumped = await dumpTable(source, options, async (dir) => {
    const restored = await restore(repo, dir, {
      asOf: options.asOf,
      source: options.source,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    lsn = restored.sourceLsn;
  });
  return { ...dumped, backup, lsn };
}
