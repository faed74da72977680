// `tables` on a format-2 repository: the catalog of the backup `asOf` names, fetched alone; at a point between
// backups, the point is restored whole into a scratch directory and recovered by the engine first (its catalog
// may differ from the backup's), which also counts the rows.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withScratchDir } from '../../common/staging.js';
import { engineNative } from '../../native/engine.js';
import { listTables } from '../../restore/tables-list.js';
import { directorySource } from '../../restore/tables.js';
import type { RepositoryTables, TablesOptions } from '../base.js';
import type { PackedContext } from './context.js';
import { pickPoint } from './point.js';
import { snapshotSource } from './restore-tables.js';
import { restore } from './restore.js';

export async function tablesAt(repo: PackedContext, options: TablesOptions): Promise<RepositoryTables> {
  const { snapshot, replay } = await pickPoint(repo, options);
  const backup = snapshot.record.id;
  if (!replay) {
    const info = await listTables(snapshotSource(repo, snapshot), options);
    return { ...info, backup, lsn: snapshot.record.source_lsn };
  }
  return withScratchDir(tmpdir(), 'tables-point', async (dir) => {
    const whole = join(dir, 'whole');
    const restored = await restore(repo, whole, {
      asOf: options.asOf,
      source: options.source,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const recovered = await engineNative.finalize(whole);
    const rows = new Map(recovered.tables.map((t) => [t.name, t.rows]));
    const info = await listTables(await directorySource(whole), { ...options, rows: false }, rows);
    return { ...info, backup, lsn: restored.sourceLsn };
  });
}
