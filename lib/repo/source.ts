// Where a backup came from. A repository holds many sources (databases);
// every backup records its source, and an increment builds only on backups of
// its own source: a backup of another database must never become an
// increment of it (restores "as of an LSN" would then pick either database).
import { hostname } from 'node:os';
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import type { BackupRecord, BackupSource } from './record.js';

export type { BackupSource } from './record.js';

/** What `--source <name>` accepts: printable, no spaces, short enough for a table column. */
const NAME = /^[^\s\p{Cc}]{1,128}$/u;

export const sourceSchema = v.object({
  host: v.string(),
  path: v.string(),
  database_id: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))),
  name: v.optional(v.pipe(v.string(), v.regex(NAME))),
});

/** The source of a backup of `dataDir` now, under the name the user gave it (if any). */
export async function currentSource(
  dataDir: string,
  databaseId: string | undefined,
  name?: string,
): Promise<BackupSource> {
  if (name !== undefined && !NAME.test(name)) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--source ${JSON.stringify(name)}: a source name is 1 to 128 characters without spaces`,
    );
  }
  return {
    host: hostname(),
    // A missing directory is reported by the backup itself, with its own code.
    path: await realpath(dataDir).catch(() => resolve(dataDir)),
    ...(databaseId ? { database_id: databaseId.toLowerCase() } : {}),
    ...(name !== undefined ? { name } : {}),
  };
}

/**
 * The key of a source: the name given, else the sync database id (it
 * survives a move to another path or host), else host and path.
 */
export const sourceKey = (s: BackupSource): string => s.name ?? s.database_id ?? `${s.host}:${s.path}`;

export const describeSource = (s: BackupSource) =>
  `${s.host}:${s.path}${s.database_id ? ` (database ${s.database_id})` : ''}`;

/** Same database: the same sync id where both have one, else the same host and path. */
export function sameDatabase(a: BackupSource, b: BackupSource): boolean {
  if (a.database_id && b.database_id) return a.database_id === b.database_id;
  return a.host === b.host && a.path === b.path;
}

const OVERRIDE =
  'if it is the same database (moved, or restored and written to again), back it up with --same-database; another database belongs in a source of its own (leave --source out, or name another), or in a format-1 repository, a repository of its own';

/**
 * Refuses a backup of `source` (at `lsn`, when known) that does not continue
 * `backups`, the backups of its source: a named source whose newest backup
 * is of another database, or an LSN behind that backup's. Backups of
 * releases before 0.1.1 record no source and constrain nothing.
 */
export function assertSameSource(
  backups: BackupRecord[],
  source: BackupSource,
  lsn: bigint | undefined,
  override: boolean | undefined,
): void {
  if (override) return;
  const newest = backups.filter((r) => r.source).at(-1);
  if (!newest?.source) return;
  if (!sameDatabase(newest.source, source)) {
    throw new BackupError(
      'ERR_OTHER_DATABASE',
      `${source.path} is not the database of source ${sourceKey(newest.source)}: its newest backup ${newest.id} is of ${describeSource(newest.source)}, this is ${describeSource(source)}; ${OVERRIDE}`,
    );
  }
  if (lsn !== undefined && lsn < newest.source_lsn) {
    throw new BackupError(
      'ERR_LSN_BACKWARDS',
      `${source.path} is at LSN ${lsn}, behind the newest backup ${newest.id} (LSN ${newest.source_lsn}) of its source: it is another database, or this one was restored to an earlier point; ${OVERRIDE}`,
    );
  }
}
