// Where a backup came from. A repository holds one database: a backup of
// another one must not silently become an increment of it (restores "as of
// an LSN" would then pick either database), so every backup records its
// source and a backup whose source or LSN does not continue the newest
// backup's is refused, unless the user says it is the same database.
import { hostname } from 'node:os';
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import type { BackupRecord, BackupSource } from './record.js';

export type { BackupSource } from './record.js';

export const sourceSchema = v.object({
  host: v.string(),
  path: v.string(),
  database_id: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))),
});

/** The source of a backup of `dataDir` now. */
export async function currentSource(dataDir: string, databaseId: string | undefined): Promise<BackupSource> {
  return {
    host: hostname(),
    // A missing directory is reported by the backup itself, with its own code.
    path: await realpath(dataDir).catch(() => resolve(dataDir)),
    ...(databaseId ? { database_id: databaseId.toLowerCase() } : {}),
  };
}

export const describeSource = (s: BackupSource) =>
  `${s.host}:${s.path}${s.database_id ? ` (database ${s.database_id})` : ''}`;

/** Same database: the same sync id where both have one, else the same host and path. */
function sameDatabase(a: BackupSource, b: BackupSource): boolean {
  if (a.database_id && b.database_id) return a.database_id === b.database_id;
  return a.host === b.host && a.path === b.path;
}

const OVERRIDE =
  'if it is the same database (moved, or restored and written to again), back it up with --same-database; a different database needs a repository of its own';

/**
 * Refuses a backup of `source` (at `lsn`, when known) that does not continue
 * the newest backup that records a source. Backups of earlier releases record
 * none and constrain nothing.
 */
export function assertSameSource(
  records: BackupRecord[],
  source: BackupSource,
  lsn: bigint | undefined,
  override: boolean | undefined,
): void {
  if (override) return;
  const newest = records.filter((r) => r.source).at(-1);
  if (!newest?.source) return;
  if (!sameDatabase(newest.source, source)) {
    throw new BackupError(
      'ERR_OTHER_DATABASE',
      `${source.path} is not the database this repository backs up: its newest backup ${newest.id} is of ${describeSource(newest.source)}, this is ${describeSource(source)}; ${OVERRIDE}`,
    );
  }
  if (lsn !== undefined && lsn < newest.source_lsn) {
    throw new BackupError(
      'ERR_LSN_BACKWARDS',
      `${source.path} is at LSN ${lsn}, behind the newest backup ${newest.id} (LSN ${newest.source_lsn}) of the same path: it is another database, or this one was restored to an earlier point; ${OVERRIDE}`,
    );
  }
}
