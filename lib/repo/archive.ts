import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import { formatJson, parseJsonAs } from '../common/json.js';
import { repoNative, type RepoHandle } from '../native/repo.js';
import { SEGMENT_NAME, retainedSegments, type SyncIdentity } from '../source/sync.js';
import type { VerifyProblem, VerifyReport } from '../chain/verify.js';
import { toBackupError } from '../common/errors.js';
import { walNative, type SegmentInfo } from '../native/wal.js';

/**
 * The WAL archive of a format-2 repository: every retained segment of a
 * sync-enabled directory, stored as chunks like any file, and one sealed
 * record per segment at `archive/<database_id>-<generation>/<start>-<end>`
 * (zero-padded LSNs, so names sort by LSN). A record is written only after
 * its chunks are indexed, and never overwritten: a killed run leaves no
 * record, and the next run archives that segment again.
 */
export const ARCHIVE = 'archive/';
const RECORD_NAME = /^(\d{20})-(\d{20})$/;
const RECORD_VERSION = 1;

/** One archived segment. */
export interface ArchivedSegment {
  archive_version: number;
  database_id: string;
  primary_generation: bigint;
  catalog_version: number;
  start_lsn: bigint;
  end_lsn: bigint;
  units: number;
  /** The highest LSN in the segment after which no transaction is open. */
  last_boundary: bigint | null;
  /** The segment's file name in `.powdb-sync/retained/`. */
  file: string;
  len: bigint;
  blake3_hex: string;
  /** The chunk lists of the segment's bytes. */
  lists: string[];
  /** When the archive run that stored it started: the segment existed by then. */
  archived: string;
}

const u64 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(2n ** 64n - 1n));
const small = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(0xffffffffn), v.transform(Number));
const hex = (n: number) => v.pipe(v.string(), v.regex(new RegExp(`^[0-9a-f]{${n}}$`)));
const recordSchema = v.object({
  archive_version: v.pipe(small, v.value(RECORD_VERSION)),
  database_id: hex(32),
  primary_generation: u64,
  catalog_version: small,
  start_lsn: u64,
  end_lsn: u64,
  units: small,
  last_boundary: v.nullable(u64),
  file: v.pipe(v.string(), v.regex(SEGMENT_NAME)),
  len: u64,
  blake3_hex: hex(64),
  lists: v.array(hex(64)),
  archived: v.pipe(v.string(), v.isoTimestamp()),
});

const pad = (lsn: bigint) => lsn.toString().padStart(20, '0');
/** The prefix of one lineage's records. */
export const lineagePrefix = (databaseId: string, generation: bigint) =>
  `${ARCHIVE}${databaseId.toLowerCase()}-${generation}/`;
const recordKey = (s: { database_id: string; primary_generation: bigint; start_lsn: bigint; end_lsn: bigint }) =>
  `${lineagePrefix(s.database_id, s.primary_generation)}${pad(s.start_lsn)}-${pad(s.end_lsn)}`;

/** A run of archived LSNs without a gap. */
export interface LsnRange {
  start_lsn: bigint;
  end_lsn: bigint;
}

/** What an archive run did. */
export interface ArchiveResult {
  database_id: string;
  primary_generation: bigint;
  /** Segments stored by this run, oldest first. */
  archived: { file: string; start_lsn: bigint; end_lsn: bigint; units: number; bytes: bigint }[];
  /** Segments found that were archived before. */
  unchanged: number;
  /** The lineage's archive after the run, and the holes in it. */
  ranges: LsnRange[];
  gaps: { after_lsn: bigint; next_lsn: bigint }[];
  /** This run stored a segment that does not continue what was archived before it. */
  new_gap: boolean;
  /** The run's time, stamped on what it stored. */
  time: string;
  /** With a server: what asking it to archive gave (its LSN once archived), and how long it took. */
  server?: { lsn?: bigint; ms: number; error?: { code: string; message: string } };
}

/** Contiguous ranges of `segments` (sorted by start) and the gaps between them. */
export function coverage(segments: { start_lsn: bigint; end_lsn: bigint }[]): {
  ranges: LsnRange[];
  gaps: { after_lsn: bigint; next_lsn: bigint }[];
} {
  const ranges: LsnRange[] = [];
  for (const s of segments) {
    const last = ranges.at(-1);
    if (last && s.start_lsn === last.end_lsn + 1n) last.end_lsn = s.end_lsn;
    else ranges.push({ start_lsn: s.start_lsn, end_lsn: s.end_lsn });
  }
  const gaps = ranges.slice(1).map((r, i) => ({ after_lsn: ranges[i]!.end_lsn, next_lsn: r.start_lsn }));
  return { ranges, gaps };
}

/** Refuses a segment whose content is not what its name, the identity and the archive so far say. */
function checkSegment(
  path: string,
  range: { start_lsn: bigint; end_lsn: bigint },
  info: SegmentInfo,
  want: { databaseId: string; generation: bigint; catalogVersion: number },
): void {
  if (info.startLsn !== range.start_lsn || info.endLsn !== range.end_lsn) {
    throw new BackupError(
      'ERR_BAD_SEGMENT',
      `${path} holds LSNs ${info.startLsn}-${info.endLsn}, not what its name says`,
    );
  }
  if (info.databaseId !== want.databaseId || info.primaryGeneration !== want.generation) {
    throw new BackupError(
      'ERR_BAD_SEGMENT',
      `${path} belongs to database ${info.databaseId} generation ${info.primaryGeneration}, not to ${want.databaseId} generation ${want.generation} (.powdb-sync/identity.json)`,
    );
  }
  if (info.catalogVersion < want.catalogVersion) {
    throw new BackupError(
      'ERR_BAD_SEGMENT',
      `${path} has catalog format ${info.catalogVersion} after ${want.catalogVersion}`,
    );
  }
}

/** The archive records of a repository: listing, reading, adding, fetching segments back. */
export class WalArchive {
  constructor(private readonly handle: RepoHandle) {}

  /** The record keys of one lineage (or of all), oldest first: no object is read. */
  async keys(databaseId?: string, generation?: bigint): Promise<string[]> {
    const prefix = databaseId === undefined ? ARCHIVE : lineagePrefix(databaseId, generation!);
    const objects = await repoNative.listObjects(this.handle.handle, prefix);
    return objects.map((o) => o.key).sort();
  }

  async read(key: string): Promise<ArchivedSegment> {
    const text = (await repoNative.readObject(this.handle.handle, key)).toString('utf8');
    const bad = (why: string) => new BackupError('ERR_BAD_MANIFEST', `archive record ${key} is unreadable: ${why}`);
    const record = parseJsonAs(text, recordSchema, bad) as ArchivedSegment;
    if (recordKey(record) !== key)
      throw new BackupError('ERR_INTEGRITY', `archive record ${key} describes ${recordKey(record)}`);
    return record;
  }

  /** Every record of one lineage (or of all), oldest first. */
  async records(databaseId?: string, generation?: bigint): Promise<ArchivedSegment[]> {
    const keys = await this.keys(databaseId, generation);
    return Promise.all(keys.map((key) => this.read(key)));
  }

  /**
   * Stores the retained segments of `dataDir` not yet archived, each checked
   * (every unit, the footer, its identity, no overlap with what is archived).
   * The caller holds a shared hold (archive runs and backups go on beside it).
   */
  async archive(dataDir: string, identity: SyncIdentity, token?: number): Promise<ArchiveResult> {
    const time = new Date().toISOString();
    const databaseId = identity.database_id.toLowerCase();
    const generation = identity.primary_generation;
    const segments = await retainedSegments(dataDir);
    const keys = await this.keys(databaseId, generation);
    const known = keys.map((key) => {
      const [, start, end] = RECORD_NAME.exec(key.slice(key.lastIndexOf('/') + 1))!;
      return { start_lsn: BigInt(start!), end_lsn: BigInt(end!) };
    });
    const newest = keys.length > 0 ? await this.read(keys.at(-1)!) : undefined;
    let catalogVersion = newest?.catalog_version ?? 0;
    const fresh: ArchivedSegment[] = [];
    let unchanged = 0;
    for (const { name, path, ...range } of segments) {
      if (known.some((k) => k.start_lsn === range.start_lsn && k.end_lsn === range.end_lsn)) {
        unchanged += 1;
        continue;
      }
      const clash = known.find((k) => k.start_lsn <= range.end_lsn && range.start_lsn <= k.end_lsn);
      if (clash) {
        throw new BackupError(
          'ERR_BAD_SEGMENT',
          `${path} overlaps LSNs ${clash.start_lsn}-${clash.end_lsn} already archived: history was rewritten`,
        );
      }
      const info = await walNative.inspectSegment(path, token);
      checkSegment(path, range, info, { databaseId, generation, catalogVersion });
      catalogVersion = info.catalogVersion;
      const stored = await repoNative.storeFile(this.handle.handle, path, { heap: false }, token);
      if (stored.len !== info.len) {
        throw new BackupError('ERR_SOURCE_CHANGED', `${path} changed while it was being archived`);
      }
      known.push(range);
      fresh.push({
        archive_version: RECORD_VERSION,
        database_id: databaseId,
        primary_generation: generation,
        catalog_version: info.catalogVersion,
        start_lsn: info.startLsn,
        end_lsn: info.endLsn,
        units: info.units,
        last_boundary: info.lastBoundary ?? null,
        file: name,
        len: info.len,
        blake3_hex: info.blake3Hex,
        lists: stored.lists,
        archived: time,
      });
    }
    if (fresh.length > 0) {
      await repoNative.commit(this.handle.handle);
      crashPoint('archive-packs-committed');
      for (const record of fresh) {
        await repoNative
          .writeObject(this.handle.handle, recordKey(record), Buffer.from(formatJson(record)))
          .catch((err: unknown) => {
            // An archive run beside this one recorded the same segment first (its chunks are stored twice: prune keeps one).
            if ((err as BackupError).code !== 'EEXIST') throw err;
          });
        crashPoint('archive-record-written');
      }
    }
    const { ranges, gaps } = coverage(known.sort((a, b) => (a.start_lsn < b.start_lsn ? -1 : 1)));
    return {
      database_id: databaseId,
      primary_generation: generation,
      archived: fresh.map((r) => ({
        file: r.file,
        start_lsn: r.start_lsn,
        end_lsn: r.end_lsn,
        units: r.units,
        bytes: r.len,
      })),
      unchanged,
      ranges,
      gaps,
      new_gap: gaps.some((g) => fresh.some((f) => f.start_lsn === g.next_lsn)),
      time,
    };
  }

  /**
   * Checks the whole archive: every record readable, every segment fetched
   * back (BLAKE3) and read unit by unit (CRCs, LSNs, footer), the segment
   * matching its record (range, count, identity), and no gap in a lineage.
   * Undefined when the repository holds no archive.
   */
  async verify(token?: number): Promise<VerifyReport | undefined> {
    const keys = await this.keys();
    if (keys.length === 0) return undefined;
    const errors: VerifyProblem[] = [];
    const good: ArchivedSegment[] = [];
    const dir = await mkdtemp(join(tmpdir(), 'powdb-backup-verify-'));
    try {
      for (const key of keys) {
        try {
          const record = await this.read(key);
          const [path] = await this.fetch([record], dir, token);
          const info = await walNative.inspectSegment(path!, token).finally(() => rm(path!, { force: true }));
          const matches =
            info.startLsn === record.start_lsn &&
            info.endLsn === record.end_lsn &&
            info.units === record.units &&
            info.databaseId === record.database_id &&
            info.primaryGeneration === record.primary_generation;
          if (!matches)
            throw new BackupError('ERR_INTEGRITY', `archived segment ${record.file} does not match its record ${key}`);
          good.push(record);
        } catch (err) {
          const e = toBackupError(err);
          if (e.code === 'ERR_ABORTED') throw e;
          errors.push({ code: e.code, message: e.message, file: key });
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const checks = summarize(good).map(
      (l) =>
        `database ${l.database_id} generation ${l.primary_generation}: ${l.segments} archived segments read back, every unit and footer CRC checked; LSNs ${l.ranges.map((r) => `${r.start_lsn}-${r.end_lsn}`).join(', ')}`,
    );
    for (const l of summarize(good)) {
      for (const g of l.gaps) {
        errors.push({
          code: 'ERR_ARCHIVE_GAP',
          message: `the archive of database ${l.database_id} generation ${l.primary_generation} has no LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}`,
          file: lineagePrefix(l.database_id, l.primary_generation),
        });
      }
    }
    return { ok: errors.length === 0, checks, errors };
  }

  /**
   * Writes `segments` back into `dir` (each checked against its BLAKE3 as it
   * is written) and returns their paths, in order.
   */
  async fetch(segments: ArchivedSegment[], dir: string, token?: number): Promise<string[]> {
    const paths: string[] = [];
    for (const s of segments) {
      const path = join(dir, s.file);
      const digest = await repoNative.restoreFile(this.handle.handle, s.lists, s.len, path, true, token);
      if (digest !== s.blake3_hex) {
        await rm(path, { force: true });
        throw new BackupError('ERR_INTEGRITY', `archived segment ${s.file}: BLAKE3 mismatch (archive is corrupt)`);
      }
      paths.push(path);
    }
    return paths;
  }
}

/** One lineage's archive, as `info` shows it. */
export interface ArchiveLineage {
  database_id: string;
  primary_generation: bigint;
  segments: number;
  bytes: bigint;
  /** Each run of LSNs without a gap, with when its first and last segments were archived. */
  ranges: (LsnRange & { first_archived: string; last_archived: string })[];
  gaps: { after_lsn: bigint; next_lsn: bigint }[];
  /** The newest LSN after which no transaction is open: the newest point a replay can stop at. */
  newest_boundary: bigint | null;
  first_archived: string;
  last_archived: string;
}

/** The archive grouped by lineage, oldest lineage first. */
export function summarize(records: ArchivedSegment[]): ArchiveLineage[] {
  const groups = new Map<string, ArchivedSegment[]>();
  for (const r of records) {
    const key = lineagePrefix(r.database_id, r.primary_generation);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((segments) => {
    const times = segments.map((s) => s.archived).sort();
    const { ranges, gaps } = coverage(segments);
    const timed = ranges.map((r) => {
      const within = segments
        .filter((s) => s.start_lsn >= r.start_lsn && s.end_lsn <= r.end_lsn)
        .map((s) => s.archived)
        .sort();
      return { ...r, first_archived: within[0]!, last_archived: within.at(-1)! };
    });
    return {
      database_id: segments[0]!.database_id,
      primary_generation: segments[0]!.primary_generation,
      segments: segments.length,
      bytes: segments.reduce((sum, s) => sum + s.len, 0n),
      ranges: timed,
      gaps,
      newest_boundary: segments.reduce<bigint | null>(
        (max, s) => (s.last_boundary !== null && (max === null || s.last_boundary > max) ? s.last_boundary : max),
        null,
      ),
      first_archived: times[0]!,
      last_archived: times.at(-1)!,
    };
  });
}

/**
 * The records an expire removes: of each lineage, those that end at or
 * before the oldest kept backup of that lineage (no kept backup replays
 * them), and every record of a lineage no kept backup belongs to.
 */
export function expiredRecords(
  records: ArchivedSegment[],
  keptBases: { database_id: string; generation: bigint; lsn: bigint }[],
): ArchivedSegment[] {
  return records.filter((r) => {
    const bases = keptBases.filter(
      (b) => b.database_id.toLowerCase() === r.database_id && b.generation === r.primary_generation,
    );
    if (bases.length === 0) return true;
    const oldest = bases.reduce((min, b) => (b.lsn < min ? b.lsn : min), bases[0]!.lsn);
    return r.end_lsn <= oldest;
  });
}

/** The key of a record (for removal). */
export const keyOf = recordKey;
