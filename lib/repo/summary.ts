// The catalog summary (`summaries/<count>-<random>`, sealed like a snapshot): the text of many snapshots in one
// object, so that reading the catalog of a repository of thousands of backups is one read rather than thousands.
// It is a cache and nothing more: a snapshot is taken from it only when the `snapshots/` listing names that id with
// the same stored size (a snapshot object is written once and never changed); every other listed snapshot is read
// from its own object, and what the summary holds beyond the listing (expired backups) is ignored. A summary that
// cannot be read or parsed is as good as none. Readers write a new one, best effort, when they had to read many
// snapshots on their own, then remove the one it replaces; `verify` never uses one.
import { randomBytes } from 'node:crypto';
import { repoNative, type ObjectEntry } from '../native/repo.js';

export const SUMMARIES = 'summaries/';
export const SUMMARY_VERSION = 1;
/** Snapshots read on their own beyond which a reader writes a new summary. */
export const SUMMARY_AFTER = 32;

/** A snapshot's text as stored, with its object's stored size (the check against the listing). */
export interface SummaryEntry {
  id: string;
  size: bigint;
  text: string;
}

interface SummaryFile {
  summary_version: number;
  snapshots: { id: string; size: string; text: string }[];
}

/** Every summary, the one naming the most snapshots (its key starts with that count) first. */
export async function listSummaries(handle: number): Promise<ObjectEntry[]> {
  const all = await repoNative.listObjects(handle, SUMMARIES);
  return all.sort((a, b) => countOf(b.key) - countOf(a.key) || Number(b.size - a.size));
}

const countOf = (key: string) => Number(/^summaries\/(\d+)-/.exec(key)?.[1] ?? -1);

/** The entries of summary `key` by id; empty when it cannot be read or is not one this release writes. */
export async function readSummary(handle: number, key: string): Promise<Map<string, SummaryEntry>> {
  const entries = new Map<string, SummaryEntry>();
  let file: SummaryFile;
  try {
    file = JSON.parse((await repoNative.readObject(handle, key)).toString('utf8')) as SummaryFile;
  } catch {
    return entries; // removed meanwhile, damaged, or not JSON: read the snapshots themselves
  }
  if (file?.summary_version !== SUMMARY_VERSION || !Array.isArray(file.snapshots)) return entries;
  for (const s of file.snapshots) {
    const valid = typeof s?.id === 'string' && typeof s.text === 'string' && /^\d{1,20}$/.test(String(s.size));
    if (valid) entries.set(s.id, { id: s.id, size: BigInt(s.size), text: s.text });
  }
  return entries;
}

/**
 * Publishes a summary of `entries` under a new key, then removes `replaced` (the summaries listed before it). Best
 * effort: a repository these credentials cannot write to, or a store that fails, just keeps what it had.
 */
export async function writeSummary(handle: number, entries: SummaryEntry[], replaced: string[]): Promise<void> {
  const file: SummaryFile = {
    summary_version: SUMMARY_VERSION,
    snapshots: entries.map((e) => ({ id: e.id, size: e.size.toString(), text: e.text })),
  };
  const key = `${SUMMARIES}${String(entries.length).padStart(10, '0')}-${randomBytes(8).toString('hex')}`;
  try {
    await repoNative.writeObject(handle, key, Buffer.from(JSON.stringify(file), 'utf8'));
    for (const old of replaced) await repoNative.deleteObject(handle, old);
  } catch {
    // A cache not written is a cache not used: the next reader reads the snapshots themselves.
  }
}
