// The catalog summary (`summaries/<count>-<random>`, sealed like a snapshot): every backup's snapshot head (its
// catalog record and sync block, without the files) and, once `info` counted them, the bytes it holds, in one object, so that picking among the backups of a
// repository of thousands is one read rather than thousands. It is a cache and nothing more: a head is taken from it
// only when the `snapshots/` listing names that id with the same stored size (a snapshot object is written once and
// never changed); every other listed snapshot is read from its own object, and what the summary holds beyond the
// listing (expired backups) is ignored. A summary that cannot be read or parsed is as good as none; an entry that
// does not check is read on its own. Readers write a new one, best effort, when they had to read many snapshots on
// their own, then remove those they listed. Held bytes count each blob's stored size as the index gives it, which
// only a prune or repair changes (by removing index objects): they are kept only while every index object they were
// counted with is still there. `verify`, `expire` and `repair` read every snapshot itself.
import { randomBytes } from 'node:crypto';
import * as v from 'valibot';
import { formatJsonLine, parseIntegerJson } from '../common/json.js';
import { repoNative, type ObjectEntry } from '../native/repo.js';
import { headSchema, type SnapshotHead } from './snapshot.js';

export const SUMMARIES = 'summaries/';
export const SUMMARY_VERSION = 1;
/** Snapshots read on their own beyond which a reader writes a new summary. */
export const SUMMARY_AFTER = 32;

/** A snapshot's head, with its object's stored size (the check against the listing). */
export interface SummaryEntry {
  id: string;
  size: bigint;
  head: SnapshotHead;
  /** The stored bytes of every blob it uses (what `info` calls held), as the index objects of `heldWith` gave them. */
  held?: bigint;
}

/** A summary read: its entries by id, and the index objects its held bytes were counted with. */
export interface Summary {
  entries: Map<string, SummaryEntry>;
  heldWith: string[] | undefined;
}

const u64 = v.pipe(v.bigint(), v.minValue(0n));
const entrySchema = v.object({ id: v.string(), size: u64, head: headSchema, held: v.optional(u64) });

/** Every summary, the one naming the most snapshots (its key starts with that count) first. */
export async function listSummaries(handle: number): Promise<ObjectEntry[]> {
  const all = await repoNative.listObjects(handle, SUMMARIES);
  return all.sort((a, b) => countOf(b.key) - countOf(a.key) || Number(b.size - a.size));
}

const countOf = (key: string) => Number(/^summaries\/(\d+)-/.exec(key)?.[1] ?? -1);

/** Summary `key`'s entries that check, by id; none when it cannot be read or is not one this release writes. */
export async function readSummary(handle: number, key: string | undefined): Promise<Summary> {
  const summary: Summary = { entries: new Map(), heldWith: undefined };
  if (key === undefined) return summary;
  let file: { summary_version?: unknown; held_with?: unknown; snapshots?: unknown };
  try {
    file = parseIntegerJson((await repoNative.readObject(handle, key)).toString('utf8')) as typeof file;
  } catch {
    return summary; // removed meanwhile, damaged, or not JSON: read the snapshots themselves
  }
  if (file?.summary_version !== BigInt(SUMMARY_VERSION) || !Array.isArray(file.snapshots)) return summary;
  if (Array.isArray(file.held_with) && file.held_with.every((k) => typeof k === 'string')) {
    summary.heldWith = file.held_with as string[];
  }
  for (const raw of file.snapshots) {
    const checked = v.safeParse(entrySchema, raw);
    if (checked.success && checked.output.head.record.id === checked.output.id) {
      summary.entries.set(checked.output.id, checked.output as SummaryEntry);
    }
  }
  return summary;
}

/** Whether held bytes counted with the index objects `heldWith` still hold: none of those objects is gone. */
export function heldStillValid(heldWith: string[] | undefined, indexKeys: Set<string>): boolean {
  return heldWith !== undefined && heldWith.every((k) => indexKeys.has(k));
}

/**
 * Publishes a summary of `entries` under a new key, then removes `replaced` (the summaries listed before it). Best
 * effort: a repository these credentials cannot write to, or a store that fails, just keeps what it had.
 */
export async function writeSummary(
  handle: number,
  entries: SummaryEntry[],
  heldWith: string[] | undefined,
  replaced: string[],
): Promise<void> {
  const file = {
    summary_version: SUMMARY_VERSION,
    ...(heldWith ? { held_with: heldWith } : {}),
    snapshots: heldWith ? entries : entries.map(({ held: _held, ...rest }) => rest),
  };
  const key = `${SUMMARIES}${String(entries.length).padStart(10, '0')}-${randomBytes(8).toString('hex')}`;
  try {
    await repoNative.writeObject(handle, key, Buffer.from(formatJsonLine(file), 'utf8'));
    for (const old of replaced) await repoNative.deleteObject(handle, old);
  } catch {
    // A cache not written is a cache not used: the next reader reads the snapshots themselves.
  }
}
