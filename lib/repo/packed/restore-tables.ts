// A table restore from a format-2 repository: at a backup, only the chosen tables' files (plus the catalog and the
// small files) are fetched from the packs; at a point between backups, the whole point is restored into a scratch
// directory beside the destination first (lib/restore/tables.ts viaWholeDirectory).
import { repoNative } from '../../native/repo.js';
import { mergeTables } from '../../restore/merge.js';
import { resultSize } from '../../restore/restore.js';
import { restoreTables, viaWholeDirectory, type TableSource } from '../../restore/tables.js';
import type { TableChoice } from '../../native/catalog.js';
import type { RepositoryRestoreResult, RestoreAsOf } from '../base.js';
import type { Snapshot } from '../snapshot.js';
import type { PackedContext } from './context.js';

/** A snapshot as a table restore's source: each file's chunks fetched pack by pack, written under any name. */
export function snapshotSource(repo: PackedContext, snapshot: Snapshot): TableSource {
  const byName = new Map(snapshot.files.map((f) => [f.name, f]));
  return {
    files: snapshot.files.map((f) => ({ name: f.name, len: f.len })),
    sync: snapshot.sync,
    async write(files, token) {
      const wanted = files.map((f) => {
        const stored = byName.get(f.name)!;
        return { lists: stored.lists, len: stored.len, dest: f.dest };
      });
      await repoNative.restoreFiles(repo.handle.handle, wanted, false, token);
    },
  };
}

/**
 * Restores `choices` from `snapshot` into `dest`; with `between` (a point past the backup, replayed from the WAL
 * archive), through `restoreWhole`, the repository's own whole restore of that point into a scratch directory.
 */
export async function restoreTablesAt(
  repo: PackedContext,
  dest: string,
  snapshot: Snapshot,
  choices: TableChoice[],
  options: RestoreAsOf,
  restoreWhole?: (scratch: string) => Promise<RepositoryRestoreResult>,
): Promise<RepositoryRestoreResult> {
  const record = snapshot.record;
  if (!restoreWhole) {
    const tables = await restoreTables(snapshotSource(repo, snapshot), dest, choices, options);
    return {
      dest,
      ...(await resultSize(dest)),
      increments: 0,
      sourceLsn: record.source_lsn,
      applied: [record.id],
      tables,
    };
  }
  let whole: RepositoryRestoreResult | undefined;
  const tables = await viaWholeDirectory(dest, choices, options, async (scratch) => {
    whole = await restoreWhole(scratch);
  });
  const { replay, sourceLsn, applied } = whole!;
  return {
    dest,
    ...(await resultSize(dest)),
    increments: 0,
    sourceLsn,
    applied,
    ...(replay ? { replay } : {}),
    tables,
  };
}

/** Like `restoreTablesAt`, but merges the tables into `target`, an existing stopped database (lib/restore/merge.ts). */
export async function mergeTablesAt(
  repo: PackedContext,
  target: string,
  snapshot: Snapshot,
  choices: TableChoice[],
  options: RestoreAsOf,
  restoreWhole?: (scratch: string) => Promise<RepositoryRestoreResult>,
): Promise<RepositoryRestoreResult> {
  let staged: RepositoryRestoreResult | undefined;
  const restoreTo = async (stage: string) => {
    staged = await restoreTablesAt(repo, stage, snapshot, choices, options, restoreWhole);
    return staged.tables!;
  };
  // At a backup its catalog is the one merged; a replayed point's may differ.
  const tables = await mergeTables(
    target,
    choices,
    options,
    restoreTo,
    restoreWhole ? undefined : snapshotSource(repo, snapshot),
  );
  // Without `staged`, this run only finished a merge a killed run had planned: the snapshot is all it knows.
  const { sourceLsn, applied, replay } = staged ?? {
    sourceLsn: snapshot.record.source_lsn,
    applied: [snapshot.record.id],
  };
  return {
    dest: target,
    ...(await resultSize(target)),
    increments: 0,
    sourceLsn,
    applied,
    ...(replay ? { replay } : {}),
    tables,
  };
}
