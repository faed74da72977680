import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import { formatJson, parseJson } from '../common/json.js';
import { STAGING_MARK, byName, isPlainName } from '../common/names.js';
import { orderedSyncBlock, syncBlockProblem, syncBlockSchema, type SyncBlock } from '../source/sync.js';

/** The only manifest format this build reads and writes (the reference's). */
export const FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const INCREMENT_FILE = 'increment.json';
/** A delta record: u32 page index + one 4096-byte page. */
export const DELTA_RECORD_SIZE = 4100n;
/** Readers take this when a manifest has no `catalog_version` (0.4.7 wrote none). */
export const LEGACY_CATALOG_VERSION = 5;

/** One file of a full backup, or a file an increment ships whole. */
export interface FileEntry {
  name: string;
  len: bigint;
  blake3_hex: string;
}

/** `manifest.json` of a full backup. LSNs and lengths are u64, as bigint. */
export interface BackupManifest {
  format_version: number;
  created_unix_secs: bigint;
  source_lsn: bigint;
  /** Absent in manifests written by powdb-backup 0.4.7. */
  catalog_version?: number;
  /** Present when the source was sync-enabled (as powdb-backup 0.29 writes it). */
  sync?: SyncBlock;
  files: FileEntry[];
}

/** The pages of a heap newer than the base, shipped in `delta_file`. */
export interface PagesEntry {
  name: string;
  total_pages: number;
  page_indices: number[];
  delta_file: string;
  delta_len: bigint;
  delta_blake3_hex: string;
}

/** An increment's change to one file (externally tagged, as serde writes it). */
export type ChangedFile = { Whole: FileEntry } | { Pages: PagesEntry };

/** `increment.json` of an incremental backup. */
export interface IncrementManifest {
  format_version: number;
  created_unix_secs: bigint;
  base_source_lsn: bigint;
  source_lsn: bigint;
  catalog_version?: number;
  sync?: SyncBlock;
  changed: ChangedFile[];
}

const U64_MAX = 2n ** 64n - 1n;
const u64 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(U64_MAX));
const uint = (max: bigint) => v.pipe(v.bigint(), v.minValue(0n), v.maxValue(max), v.transform(Number));
const hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'));

// v.object drops unknown keys: readers ignore fields newer releases add.
const fileEntry = v.object({ name: v.string(), len: u64, blake3_hex: hex });
const pagesEntry = v.object({
  name: v.string(),
  total_pages: uint(0xffffffffn),
  page_indices: v.array(uint(0xffffffffn)),
  delta_file: v.string(),
  delta_len: u64,
  delta_blake3_hex: hex,
});

const backupSchema = v.object({
  format_version: uint(0xffffffffn),
  created_unix_secs: u64,
  source_lsn: u64,
  catalog_version: v.optional(uint(0xffffn)),
  sync: v.optional(syncBlockSchema),
  files: v.array(fileEntry),
});

const incrementSchema = v.object({
  format_version: uint(0xffffffffn),
  created_unix_secs: u64,
  base_source_lsn: u64,
  source_lsn: u64,
  catalog_version: v.optional(uint(0xffffn)),
  sync: v.optional(syncBlockSchema),
  changed: v.array(v.union([v.strictObject({ Whole: fileEntry }), v.strictObject({ Pages: pagesEntry })])),
});

type Kind = 'backup' | 'increment';

function badManifest(file: string, why: string): BackupError {
  return new BackupError('ERR_BAD_MANIFEST', `${file} is not a valid manifest: ${why}`);
}

/** Parses JSON, checks the format version first (so the message says so), then the schema. */
function parseChecked<S extends v.GenericSchema>(text: string, file: string, kind: Kind, schema: S): v.InferOutput<S> {
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (err) {
    throw badManifest(file, `malformed JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badManifest(file, 'not a JSON object');
  const version = (raw as { format_version?: unknown }).format_version;
  if (typeof version === 'bigint' && version !== BigInt(FORMAT_VERSION)) {
    throw new BackupError(
      'ERR_UNSUPPORTED_FORMAT',
      `unsupported ${kind} format ${version} (this build understands ${FORMAT_VERSION}): ${file}`,
    );
  }
  const result = v.safeParse(schema, raw);
  if (!result.success) {
    const issue = result.issues[0];
    throw badManifest(file, `${v.getDotPath(issue) ?? '(root)'}: ${issue.message}`);
  }
  return result.output;
}

function checkNames(names: string[], file: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (!isPlainName(name)) {
      throw new BackupError(
        'ERR_BAD_MANIFEST',
        `invalid backup manifest file name: ${JSON.stringify(name)} in ${file}`,
      );
    }
    if (seen.has(name)) throw badManifest(file, `file ${name} is listed twice`);
    seen.add(name);
  }
}

function checkPages(p: PagesEntry, file: string): void {
  if (p.delta_file !== `${p.name}.delta`) {
    throw badManifest(file, `delta file of ${p.name} must be ${p.name}.delta, not ${JSON.stringify(p.delta_file)}`);
  }
  if (p.delta_len !== BigInt(p.page_indices.length) * DELTA_RECORD_SIZE) {
    throw badManifest(
      file,
      `delta for ${p.name} has length ${p.delta_len} but ${p.page_indices.length} page records expected ${BigInt(p.page_indices.length) * DELTA_RECORD_SIZE}`,
    );
  }
  p.page_indices.forEach((index, i) => {
    if (index >= p.total_pages) throw badManifest(file, `${p.name} lists page ${index} of ${p.total_pages}`);
    if (i > 0 && index <= p.page_indices[i - 1]!) throw badManifest(file, `${p.name} page indices are not ascending`);
  });
}

/** A sync block must agree with its manifest (the reference's checks and wording). */
function checkSync(m: BackupManifest | IncrementManifest, file: string): void {
  const problem = m.sync && syncBlockProblem(m.sync, m.source_lsn, m.catalog_version ?? LEGACY_CATALOG_VERSION);
  if (problem) throw badManifest(file, problem);
}

/** Validates the text of a `manifest.json`; `file` names it in errors. */
export function parseBackupManifest(text: string, file: string): BackupManifest {
  const m = parseChecked(text, file, 'backup', backupSchema);
  checkSync(m, file);
  checkNames(
    m.files.map((f) => f.name),
    file,
  );
  return m;
}

/** Validates the text of an `increment.json`; `file` names it in errors. */
export function parseIncrementManifest(text: string, file: string): IncrementManifest {
  const m = parseChecked(text, file, 'increment', incrementSchema);
  checkSync(m, file);
  checkNames(m.changed.map(changedName), file);
  for (const c of m.changed) if ('Pages' in c) checkPages(c.Pages, file);
  return m;
}

export function changedName(c: ChangedFile): string {
  return 'Whole' in c ? c.Whole.name : c.Pages.name;
}

/** Manifests are small; a bigger one is hostile and is not read into memory. */
const MAX_MANIFEST_BYTES = 128 * 1024 * 1024;

/** Reads a small JSON file of a backup (never through a symlink), returning its text and path. */
export async function readManifestText(dir: string, fileName: string, kind: string): Promise<[string, string]> {
  if (basename(resolve(dir)).startsWith(STAGING_MARK)) {
    throw new BackupError('ERR_NOT_A_BACKUP', `${dir} is the staging directory of an interrupted run, never published`);
  }
  const file = join(dir, fileName);
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new BackupError('ERR_NOT_A_BACKUP', `${dir} is not a ${kind}: ${fileName} is missing`);
    }
    if (code === 'ELOOP')
      throw new BackupError('ERR_UNSAFE_PATH', `${file} is a symlink; backups never follow symlinks`);
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new BackupError('ERR_UNSAFE_PATH', `${file} is not a regular file`);
    if (st.size > MAX_MANIFEST_BYTES) throw badManifest(file, `${st.size} bytes is too large for a manifest`);
    return [await handle.readFile('utf8'), file];
  } finally {
    await handle.close();
  }
}

/** Reads and validates `<dir>/manifest.json`. */
export async function readManifest(dir: string): Promise<BackupManifest> {
  return parseBackupManifest(...(await readManifestText(dir, MANIFEST_FILE, 'backup')));
}

/** Reads and validates `<dir>/increment.json`. */
export async function readIncrement(dir: string): Promise<IncrementManifest> {
  return parseIncrementManifest(...(await readManifestText(dir, INCREMENT_FILE, 'increment')));
}

/** The text of a `manifest.json`, laid out exactly as the reference writes it. */
export function formatBackupManifest(m: BackupManifest): string {
  return formatJson({
    format_version: m.format_version,
    created_unix_secs: m.created_unix_secs,
    source_lsn: m.source_lsn,
    ...(m.catalog_version === undefined ? {} : { catalog_version: m.catalog_version }),
    ...(m.sync ? { sync: orderedSyncBlock(m.sync) } : {}),
    files: [...m.files].sort(byName).map((f) => ({ name: f.name, len: f.len, blake3_hex: f.blake3_hex })),
  });
}

/** The text of an `increment.json`, laid out exactly as the reference writes it. */
export function formatIncrementManifest(m: IncrementManifest): string {
  const changed = [...m.changed]
    .sort((a, b) => byName({ name: changedName(a) }, { name: changedName(b) }))
    .map((c) =>
      'Whole' in c
        ? { Whole: { name: c.Whole.name, len: c.Whole.len, blake3_hex: c.Whole.blake3_hex } }
        : {
            Pages: {
              name: c.Pages.name,
              total_pages: c.Pages.total_pages,
              page_indices: c.Pages.page_indices,
              delta_file: c.Pages.delta_file,
              delta_len: c.Pages.delta_len,
              delta_blake3_hex: c.Pages.delta_blake3_hex,
            },
          },
    );
  return formatJson({
    format_version: m.format_version,
    created_unix_secs: m.created_unix_secs,
    base_source_lsn: m.base_source_lsn,
    source_lsn: m.source_lsn,
    ...(m.catalog_version === undefined ? {} : { catalog_version: m.catalog_version }),
    ...(m.sync ? { sync: orderedSyncBlock(m.sync) } : {}),
    changed,
  });
}

/** What a backup or increment stores: files, bytes (whole files plus deltas) and delta pages. */
export function storedSize(m: BackupManifest | IncrementManifest): { files: number; bytes: bigint; pages: number } {
  if ('files' in m) return { files: m.files.length, bytes: m.files.reduce((sum, f) => sum + f.len, 0n), pages: 0 };
  let bytes = 0n;
  let pages = 0;
  for (const c of m.changed) {
    if ('Whole' in c) bytes += c.Whole.len;
    else {
      bytes += c.Pages.delta_len;
      pages += c.Pages.page_indices.length;
    }
  }
  return { files: m.changed.length, bytes, pages };
}
