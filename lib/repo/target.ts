// `--as-of`: what a restore target names (a backup id, an LSN, or a time
// with its zone), and how a restore resolved it.
import { BackupError } from '../common/errors.js';
import type { RestoreOptions } from '../restore/restore.js';
import type { BackupRecord } from './record.js';

/** A point to restore (default: the newest), of one source (its key; needed when a repository holds several). */
export type RestoreAsOf = RestoreOptions & { asOf?: string | bigint | Date; source?: string };

/** What `asOf` names: a backup id, an LSN, or a time. */
export type Target = { id: string } | { lsn: bigint } | { time: number };

/** An ISO 8601 date and time; its zone (`Z` or `+hh:mm`) is captured apart. */
const ISO_TIME = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * A time target in milliseconds. It must carry its zone: read in the machine's
 * local time, one string would name different moments on different hosts (a
 * restore under another TZ restored hours later). A moment in the future has
 * no state to restore yet.
 */
export function parseTime(text: string, now = Date.now()): number | undefined {
  const m = ISO_TIME.exec(text.trim());
  if (!m) return undefined;
  if (!m[2]) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${text} has no time zone: add Z for UTC (${m[1]!.replace(' ', 'T')}Z) or the offset it was taken in (for example +09:00)`,
    );
  }
  const time = Date.parse(`${m[1]!.replace(' ', 'T')}${m[2].length === 3 ? `${m[2]}:00` : m[2]}`);
  if (Number.isNaN(time)) return undefined;
  if (time > now) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${text} (${new Date(time).toISOString()}) is in the future (now ${new Date(now).toISOString()}); leave --as-of out for the newest point`,
    );
  }
  return time;
}

export function parseTarget(asOf: string | bigint | Date, ids: Set<string>): Target {
  if (asOf instanceof Date) return { time: asOf.getTime() };
  if (typeof asOf === 'bigint') return { lsn: asOf };
  if (ids.has(asOf)) return { id: asOf };
  if (/^\d+$/.test(asOf)) return { lsn: BigInt(asOf) };
  const time = parseTime(asOf);
  if (time === undefined) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--as-of ${asOf} is neither a backup id, an LSN nor an ISO 8601 time with a zone (2026-12-07T08:44:04Z)`,
    );
  }
  return { time };
}

/** What a restore with a target resolved it to, printed after every such restore. */
export interface RestoreTarget {
  /** The target as given. */
  asked: string;
  /** A time target, in UTC. */
  time?: string;
  /** The backup restored, when it was taken, and its LSN. */
  backup: string;
  backup_created: string;
  backup_lsn: bigint;
  /** The LSN the restored directory is at (past `backup_lsn` when archived WAL was replayed). */
  lsn: bigint;
  /** False when nothing reaches the target itself: the restored state is older than asked (`note` says by how much). */
  exact: boolean;
  note?: string;
}

/** How `asOf` resolved, for a restore of `record` that reached `lsn` (replaying WAL when `replayed`). */
export function resolvedTarget(
  asOf: string | bigint | Date | undefined,
  record: BackupRecord,
  lsn: bigint,
  replayed: boolean,
  ids: Set<string>,
): RestoreTarget | undefined {
  if (asOf === undefined) return undefined;
  const target = parseTarget(asOf, ids);
  const asked = asOf instanceof Date ? asOf.toISOString() : String(asOf);
  const base = { asked, backup: record.id, backup_created: record.created, backup_lsn: record.source_lsn, lsn };
  if ('id' in target) return { ...base, exact: true };
  if ('lsn' in target) {
    const exact = replayed || lsn >= target.lsn;
    const note = exact
      ? undefined
      : `LSN ${target.lsn} is past backup ${record.id} (LSN ${record.source_lsn}) and no archived WAL reaches it: restored LSN ${lsn}, the newest state at or before the target that the repository holds`;
    return { ...base, exact, ...(note ? { note } : {}) };
  }
  const time = new Date(target.time).toISOString();
  // Ids and times are to the second; a backup within the target's second is the target.
  const behind = target.time - Date.parse(record.created);
  const exact = replayed || behind < 1000;
  const note = exact
    ? undefined
    : `no backup or archived WAL reaches ${time}: restored backup ${record.id} as of ${record.created}, ${elapsed(behind)} before the target`;
  return { ...base, time, exact, ...(note ? { note } : {}) };
}

/** A duration for a note: 2 h 5 min, 40 s. */
function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ${s % 60} s`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ${min % 60} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}
