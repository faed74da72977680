import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import { formatJson, parseIntegerJson, parseJsonAs } from '../common/json.js';
import { isPlainName } from '../common/names.js';
import { syncBlockProblem, syncBlockSchema, type SyncBlock } from '../source/sync.js';
import type { BackupRecord } from './record.js';
import { sourceSchema } from './source.js';

/**
 * A format-2 backup (`snapshots/<id>`, sealed): its catalog record and what
 * each file of the database is made of (the ids of the chunk lists that
 * name its chunks in order). Small, whatever the database size.
 */
export interface Snapshot {
  snapshot_version: number;
  record: BackupRecord;
  created_unix_secs: bigint;
  catalog_version: number;
  /** The source was sync-enabled: the block its export's manifest.json carries. */
  sync?: SyncBlock;
  files: SnapshotFile[];
}

export interface SnapshotFile {
  name: string;
  len: bigint;
  /** A page-aligned heap (cut into page runs). */
  heap: boolean;
  lists: string[];
  /**
   * The lists of the file's change hints: the XXH3-128 of each chunk, in
   * order. An increment reuses the ids of chunks whose hash did not change;
   * advisory (absent in backups of earlier releases).
   */
  hints?: string[];
}

export const SNAPSHOT_VERSION = 1;
export const SNAPSHOTS = 'snapshots/';

const U64_MAX = 2n ** 64n - 1n;
const u64 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(U64_MAX));
const count = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(2n ** 32n), v.transform(Number));
const id = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

const recordSchema = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9A-Za-z-]+$/)),
  type: v.picklist(['full', 'incr', 'diff']),
  parent: v.nullable(v.string()),
  base_source_lsn: v.nullable(u64),
  source_lsn: u64,
  created: v.pipe(v.string(), v.isoTimestamp()),
  bytes: u64,
  files: count,
  pages: count,
  logical_bytes: u64,
  stored_bytes: u64,
  source: v.optional(sourceSchema),
});

const schema = v.object({
  snapshot_version: v.pipe(count, v.value(SNAPSHOT_VERSION)),
  record: recordSchema,
  created_unix_secs: u64,
  catalog_version: count,
  sync: v.optional(syncBlockSchema),
  files: v.array(
    v.object({
      name: v.pipe(v.string(), v.check(isPlainName, 'not a plain file name')),
      len: u64,
      heap: v.boolean(),
      lists: v.array(id),
      hints: v.optional(v.array(id)),
    }),
  ),
});

/** What picking among backups needs of a snapshot: its catalog record and sync block, not its files. */
export type SnapshotHead = Pick<Snapshot, 'record' | 'sync'>;

export const headSchema = v.object({ record: recordSchema, sync: v.optional(syncBlockSchema) });

export function headOf(s: Snapshot): SnapshotHead {
  return s.sync ? { record: s.record, sync: s.sync } : { record: s.record };
}

/** Parses a snapshot read from `snapshots/<key>`; it must name itself. */
export function parseSnapshot(text: string, key: string): Snapshot {
  const bad = (why: string) => new BackupError('ERR_BAD_MANIFEST', `backup ${key} is unreadable: ${why}`);
  // Every backup's snapshot is read by most commands: the fast parser (its numbers are all integers).
  const snapshot = parseJsonAs(text, schema, bad, parseIntegerJson) as Snapshot;
  if (snapshot.record.id !== key) {
    throw new BackupError('ERR_INTEGRITY', `backup ${key} holds the catalog record of ${snapshot.record.id}`);
  }
  const problem =
    snapshot.sync && syncBlockProblem(snapshot.sync, snapshot.record.source_lsn, snapshot.catalog_version);
  if (problem) throw bad(problem);
  const names = new Set(snapshot.files.map((f) => f.name));
  if (names.size !== snapshot.files.length) throw bad('a file is listed twice');
  return snapshot;
}

export function formatSnapshot(s: Snapshot): string {
  return formatJson(s);
}
