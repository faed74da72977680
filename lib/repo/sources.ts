// The sources of a repository's catalog: which backups are of which
// database, and which of them a command picks among.
import { BackupError } from '../common/errors.js';
import type { BackupRecord, BackupSource } from './record.js';
import { describeSource, sameDatabase, sourceKey } from './source.js';

/** The key of the backups of releases before 0.1.1, which record no source. */
export const LEGACY_SOURCE = 'legacy';

/**
 * The repository's sources, each with its backups oldest first (`records`
 * is oldest first), keyed by `sourceKey`. Backups that record no source
 * (releases before 0.1.1) are one group, `legacy`, until a backup of a
 * recorded source continues it (builds on one of them): from then on they
 * are that source's history.
 */
export function sourcesOf(records: BackupRecord[]): Map<string, BackupRecord[]> {
  const unsourced = new Set(records.filter((r) => !r.source).map((r) => r.id));
  const heir = records.find((r) => r.source && r.parent !== null && unsourced.has(r.parent));
  const legacyKey = heir?.source ? sourceKey(heir.source) : LEGACY_SOURCE;
  const groups = new Map<string, BackupRecord[]>();
  for (const r of records) {
    const key = r.source ? sourceKey(r.source) : legacyKey;
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return groups;
}

/**
 * The backups a new backup of `source` continues: those of its source. The
 * legacy group (no source recorded) is continued only while it is all the
 * repository holds: with another source beside it, it could be of either.
 */
export function continuedBackups(records: BackupRecord[], source: BackupSource): BackupRecord[] {
  const groups = sourcesOf(records);
  const own = groups.get(sourceKey(source));
  if (own) return own;
  return (groups.size === 1 && groups.get(LEGACY_SOURCE)) || [];
}

/**
 * The named source whose newest backup is of the database `source` is
 * (a backup that left --source out starts a source of its own: worth a warning).
 */
export function namedSourceOf(records: BackupRecord[], source: BackupSource): string | undefined {
  for (const [key, backups] of sourcesOf(records)) {
    const newest = backups.at(-1)!.source;
    if (newest?.name !== undefined && sameDatabase(newest, source)) return key;
  }
  return undefined;
}

/** Each source with its newest backup, for messages: `key (newest ID, taken T, LSN n, of host:path)`. */
export function listSources(groups: Map<string, BackupRecord[]>): string {
  return [...groups]
    .map(([key, backups]) => {
      const newest = backups.at(-1)!;
      const of = newest.source ? `, of ${describeSource(newest.source)}` : '';
      return `${key} (newest ${newest.id}, taken ${newest.created}, LSN ${newest.source_lsn}${of})`;
    })
    .join('; ');
}

/**
 * The backups a command picks among: those of `source` when it is given;
 * every backup when `asOf` is a backup id (an id is unambiguous); else those
 * of the only source. A newest, LSN or time target over several sources is
 * refused rather than guessed (it could pick another database).
 */
export function backupsToPick(
  groups: Map<string, BackupRecord[]>,
  records: BackupRecord[],
  asOf: string | bigint | Date | undefined,
  source: string | undefined,
  repo: string,
): BackupRecord[] {
  const byId = typeof asOf === 'string' ? records.find((r) => r.id === asOf) : undefined;
  if (source !== undefined) {
    const own = groups.get(source);
    if (!own) {
      throw new BackupError(
        'ERR_NO_BACKUP',
        `repository ${repo} holds no backup of source ${source}; its sources: ${listSources(groups) || 'none'}`,
      );
    }
    if (byId && !own.includes(byId)) {
      const key = [...groups].find(([, backups]) => backups.includes(byId))![0];
      throw new BackupError('ERR_INVALID_ARG', `backup ${byId.id} is of source ${key}, not ${source}`);
    }
    return own;
  }
  if (byId || groups.size <= 1) return records;
  throw new BackupError(
    'ERR_SOURCE_AMBIGUOUS',
    `repository ${repo} holds backups of ${groups.size} sources, and ${asOf === undefined ? 'the newest' : `--as-of ${asOf instanceof Date ? asOf.toISOString() : String(asOf)}`} could be of any: ` +
      `name one with --source <key> (API option source), or give a backup id; the sources: ${listSources(groups)}`,
  );
}
