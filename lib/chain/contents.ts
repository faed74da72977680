import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import { formatJson, parseJson } from '../common/json.js';
import { readManifestText, type BackupManifest, type IncrementManifest } from './manifest.js';
import { byName, isPlainName } from '../common/names.js';

/**
 * `contents.json`: beside the reference-format manifest of every backup and
 * increment we write, the exact set of durable files the database held at
 * that moment, with each heap's content map (`<heap>.pagemap`, the XXH3-128
 * of every page). The reference crate ignores both. A chain restore lays
 * down exactly these files; the next increment compares pages with these
 * maps, so it never needs the base's bytes.
 */
export const CONTENTS_FILE = 'contents.json';
export const CONTENTS_VERSION = 1;
export const MAP_SUFFIX = '.pagemap';

export interface MapEntry {
  name: string;
  len: bigint;
  blake3_hex: string;
}

/** One durable file: its length, and its BLAKE3 (whole files) or content map (heaps). */
export interface ContentsEntry {
  name: string;
  len: bigint;
  blake3_hex?: string;
  map?: MapEntry;
}

export interface Contents {
  contents_version: number;
  /** Binds the file to its manifest: equal to the manifest's fields. */
  created_unix_secs: bigint;
  base_source_lsn?: bigint;
  source_lsn: bigint;
  files: ContentsEntry[];
}

const u64 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(2n ** 64n - 1n));
const hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const mapEntry = v.object({ name: v.string(), len: u64, blake3_hex: hex });
const schema = v.object({
  contents_version: v.literal(BigInt(CONTENTS_VERSION)),
  created_unix_secs: u64,
  base_source_lsn: v.optional(u64),
  source_lsn: u64,
  files: v.array(v.object({ name: v.string(), len: u64, blake3_hex: v.optional(hex), map: v.optional(mapEntry) })),
  sha256: hex,
});

/** The file's own checksum covers its text with the checksum written as zeros. */
const ZEROS = '0'.repeat(64);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export function formatContents(c: Contents): string {
  const text = formatJson({
    contents_version: c.contents_version,
    created_unix_secs: c.created_unix_secs,
    ...(c.base_source_lsn === undefined ? {} : { base_source_lsn: c.base_source_lsn }),
    source_lsn: c.source_lsn,
    files: [...c.files].sort(byName).map((f) => ({
      name: f.name,
      len: f.len,
      ...(f.blake3_hex === undefined ? {} : { blake3_hex: f.blake3_hex }),
      ...(f.map === undefined ? {} : { map: { name: f.map.name, len: f.map.len, blake3_hex: f.map.blake3_hex } }),
    })),
    sha256: ZEROS,
  });
  return text.replace(`"sha256": "${ZEROS}"`, `"sha256": "${sha256(text)}"`);
}

function corrupt(file: string, why: string): BackupError {
  return new BackupError('ERR_INTEGRITY', `integrity check failed for ${file}: ${why} (backup is corrupt)`);
}

/** Validates `contents.json` text and that it belongs to `manifest`. */
export function parseContents(text: string, file: string, manifest: BackupManifest | IncrementManifest): Contents {
  const stored = /"sha256": "([0-9a-f]{64})"/.exec(text)?.[1];
  if (!stored || sha256(text.replace(`"sha256": "${stored}"`, `"sha256": "${ZEROS}"`)) !== stored) {
    throw corrupt(file, 'checksum mismatch');
  }
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (err) {
    throw corrupt(file, `malformed JSON (${(err as Error).message})`);
  }
  const result = v.safeParse(schema, raw);
  if (!result.success) throw new BackupError('ERR_BAD_MANIFEST', `${file} is not valid: ${result.issues[0].message}`);
  const c = { ...result.output, contents_version: CONTENTS_VERSION };
  const base = 'files' in manifest ? undefined : manifest.base_source_lsn;
  if (
    c.created_unix_secs !== manifest.created_unix_secs ||
    c.source_lsn !== manifest.source_lsn ||
    c.base_source_lsn !== base
  ) {
    throw corrupt(file, 'it does not belong to the manifest beside it');
  }
  const names = new Set<string>();
  for (const f of c.files) {
    for (const name of [f.name, f.map?.name]) {
      if (name !== undefined && !isPlainName(name))
        throw new BackupError(
          'ERR_BAD_MANIFEST',
          `invalid backup manifest file name: ${JSON.stringify(name)} in ${file}`,
        );
    }
    if (names.has(f.name)) throw new BackupError('ERR_BAD_MANIFEST', `${file} lists ${f.name} twice`);
    if (f.map && f.map.name !== `${f.name}${MAP_SUFFIX}`) {
      throw new BackupError('ERR_BAD_MANIFEST', `${file}: the map of ${f.name} must be ${f.name}${MAP_SUFFIX}`);
    }
    names.add(f.name);
  }
  return c;
}

/** Reads `<dir>/contents.json`, or null for a backup without one (the reference's, or older ones of ours). */
export async function readContents(
  dir: string,
  manifest: BackupManifest | IncrementManifest,
): Promise<Contents | null> {
  let text: string, file: string;
  try {
    [text, file] = await readManifestText(dir, CONTENTS_FILE, 'contents');
  } catch (err) {
    if ((err as BackupError).code === 'ERR_NOT_A_BACKUP') return null;
    throw err;
  }
  return parseContents(text, file, manifest);
}

/**
 * The error for a backup directory without `contents.json` that should have
 * one, else null. Every backup and increment this tool writes holds
 * `contents.json` and a `<heap>.pagemap` beside each page-aligned heap; the
 * reference crate copies only the database's own files, whose names never end
 * in `.pagemap` (table names have no dots), and no `contents.json`. So a
 * directory holding a map lost its `contents.json`. One of ours without any
 * map (a database without heaps) cannot be told from the reference's.
 */
export async function contentsMissing(dir: string): Promise<BackupError | null> {
  const names = await readdir(dir);
  if (names.includes(CONTENTS_FILE) || !names.some((n) => n.endsWith(MAP_SUFFIX))) return null;
  return new BackupError(
    'ERR_MISSING_FILE',
    `${CONTENTS_FILE} is missing from ${dir} (backup is corrupt): a backup holding content maps is always written with one`,
  );
}
