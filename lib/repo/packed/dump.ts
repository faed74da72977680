// `dump` on a format-2 repository: at a backup, only the catalog and the table's heap are fetched from the packs;
// at a point between backups, the point is restored whole (replayed from the WAL archive) into the dump's scratch
// directory and recovered by the engine first.
import { dumpTable } from '../../restore/dump.js';
import type { RepositoryDump, RepositoryDumpOptions } from '../base.js';
import type { PackedContext } from './context.js';
import { pickPoint } from './point.js';
import { snapshotSource } from './restore-tables.js';
import { restore } from './restore.js';

export async function dumpAt(repo: PackedContext, options: RepositoryDumpOptions): Promise<RepositoryDump> {
  const { snapshot, replay } = await pickPoint(repo, options);
  const source = snapshotSource(repo, snapshot);
  const backup = snapshot.record.id;
  if (!replay) return { ...(await dumpTable(source, options)), backup, lsn: snapshot.record.source_lsn };
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
