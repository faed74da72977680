// Shared test helpers: real PowDB data directories made by the engine itself
// (tools/powdb-fixture, built for both engine generations), scratch dirs and
// independent checks (BLAKE3 from @noble/hashes, not our native code).
import { blake3 } from '@noble/hashes/blake3.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export const ROOT = join(import.meta.dirname, '..');
export const FIXTURE = join(ROOT, 'target', 'release', 'powdb-fixture');
export const REFERENCE = join(ROOT, 'target', 'release', 'powdb-reference');
export const CLI = join(ROOT, 'dist', 'lib', 'cli.js');

/** Engine generations: powdb-storage 0.4.7 (the reference's) and the newest release. */
export const GENS = ['old', 'new'] as const;
export type Gen = (typeof GENS)[number];

const scratch: string[] = [];
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh scratch directory, removed after the test. */
export function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'powdb-backup-test-'));
  scratch.push(dir);
  return dir;
}

/** Runs the engine fixture tool and parses its JSON line. */
export function fixture(gen: Gen, command: string, dir: string, ...args: (string | number)[]): any {
  const out = execFileSync(FIXTURE, [command, dir, '--gen', gen, ...args.map(String)], {
    encoding: 'utf8',
    maxBuffer: 1 << 30, // `rows` of a large table
  });
  return JSON.parse(out);
}

export interface TableReport {
  count: number;
  ids: number[];
}

/** Opens a directory with the real engine and reports every table's rows. Writes to `dir`. */
export function report(gen: Gen, dir: string): Record<string, TableReport> {
  return fixture(gen, 'report', dir, '--ids').tables;
}

/** A data dir with table T holding ids 0..rows (and an index on id). */
export function makeDb(gen: Gen, rows: number, ...extra: string[]): string {
  const dir = join(tmp(), 'data');
  fixture(gen, 'create', dir, '--rows', rows, ...extra);
  return dir;
}

/** T (index on id), Cust (index, an overflow row), Doc (JSON column, unique index, expression index, overflow values,
 * a link to Cust) and Big (backing table of a view over Cust): engine 0.29, catalog version 7. */
export function richDb(): string {
  const dir = makeDb('new', 50, '--index');
  fixture('new', 'add-table', dir, '--table', 'Cust', '--rows', 30, '--index');
  fixture('new', 'big', dir, '--table', 'Cust', '--id', 999, '--bytes', 10_000);
  fixture('new', 'extras', dir, '--target', 'Cust', '--rows', 40);
  return dir;
}

export function insertRows(gen: Gen, dir: string, from: number, count: number, table = 'T'): void {
  fixture(gen, 'insert', dir, '--table', table, '--from', from, '--count', count);
}

export function blake3Hex(bytes: Uint8Array): string {
  return bytesToHex(blake3(bytes));
}

/** Every file of a directory with its BLAKE3, sorted by name. */
export function dirHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) out[name] = blake3Hex(readFileSync(join(dir, name)));
  return out;
}

/** Data files of a directory (what a restore lays down), with hashes: no manifests, contents or maps. */
export function dataHashes(dir: string): Record<string, string> {
  const all = dirHashes(dir);
  for (const skip of ['manifest.json', 'increment.json', 'contents.json', 'wal.log', 'LOCK']) delete all[skip];
  for (const name of Object.keys(all)) if (name.endsWith('.pagemap')) delete all[name];
  return all;
}

export function ids(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Runs the CLI; never throws. */
export function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts that `work` rejects with a BackupError of `code`, returning it. */
export async function rejectsWith(work: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  try {
    await work;
  } catch (err) {
    const e = err as Error & { code: string };
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`);
}

/** Runs the reference crate `powdb-backup` (same engine generation) through tools/powdb-reference. */
export function reference(gen: Gen, command: string, ...args: string[]): any {
  const out = execFileSync(REFERENCE, [command, ...args, '--gen', gen], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** A full backup and one increment of a real database (T with an index; rows added in between). */
export async function makeChain(gen: Gen, rows = 2000) {
  const { fullBackup, incrementalBackup } = await import('../index.js');
  const data = makeDb(gen, rows, '--index');
  const root = tmp();
  const full = join(root, 'full');
  await fullBackup(data, full);
  insertRows(gen, data, rows, 300);
  const inc = join(root, 'inc');
  await incrementalBackup(data, full, inc);
  return { data, root, full, inc };
}

/** Rewrites a manifest's text in place. */
export function editText(path: string, edit: (text: string) => string): void {
  writeFileSync(path, edit(readFileSync(path, 'utf8')));
}

/** Every path under `dir`, recursively, sorted: to prove nothing was written outside a destination. */
export function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** Every table's row count, rows hash, schema, indexes and index check, from the real engine (fixture `dump`). */
export function dump(gen: Gen, dir: string): Record<string, unknown> {
  return fixture(gen, 'dump', dir).tables;
}

/** What `syncEnable` prints: the identity written to `.powdb-sync/identity.json`, and the LSN sync starts after. */
export interface SyncEnabled {
  ok: true;
  /** False when the directory was sync-enabled already (its identity is kept). */
  created: boolean;
  database_id: string;
  primary_generation: number;
  created_unix_secs: number;
  max_lsn: number;
}

/** Enables sync on a data dir (engine 0.29) as `powdb-cli sync-enable` does. From then on the fixture opens and
 * checkpoints it sync-aware: every truncation of wal.log first writes a retained segment. */
export function syncEnable(dir: string): SyncEnabled {
  return fixture('new', 'sync-enable', dir);
}

export interface SegmentInfo {
  /** `retained-{start:020}-{end:020}.prul` */
  file: string;
  start_lsn: number;
  end_lsn: number;
  units: number;
  database_id: string;
  primary_generation: number;
  wal_format_version: number;
  catalog_version: number;
  /** With `segments(dir, true)`: every unit (WAL record) of the segment. */
  records?: { lsn: number; tx_id: number; type: number }[];
}

export interface Segments {
  ok: true;
  /** `.powdb-sync/identity.json`, or null when the directory is not sync-enabled. */
  identity: {
    format_version: number;
    database_id: string;
    primary_generation: number;
    created_unix_secs: number;
  } | null;
  /** In LSN order, each read and checked by powdb-sync's own segment reader. */
  segments: SegmentInfo[];
  units: number;
  first_lsn: number | null;
  last_lsn: number | null;
  /** Each segment starts one past the end of the one before. */
  contiguous: boolean;
}

/** The retained WAL segments of a sync-enabled directory (read only; the catalog is not opened). */
export function segments(dir: string, units = false): Segments {
  return fixture('new', 'segments', dir, ...(units ? ['--units'] : []));
}

export interface TransactionOptions {
  table?: string;
  /** Insert ids from..from+count. */
  from?: number;
  count?: number;
  pad?: number;
  /** Add 1 to the score of every K-th row (scan order as of BEGIN). */
  updateEvery?: number;
  /** Delete every K-th row (same scan). */
  deleteEvery?: number;
  /** COMMIT (default), ROLLBACK, or a crash: WAL fsynced, nothing checkpointed, LOCK left behind. */
  end?: 'commit' | 'rollback' | 'crash';
}

export interface TransactionResult {
  ok: true;
  outcome: 'commit' | 'rollback' | 'crash';
  updated: number;
  deleted: number;
  inserted: number;
  /** The last LSN before BEGIN. */
  lsn_before: number;
  begin_lsn: number;
  /** The last row record's LSN. */
  last_lsn: number;
  commit_lsn: number | null;
  /** After the end: back to lsn_before on a rollback (its LSNs are handed out again). */
  max_lsn: number;
}

/** One explicit multi-row transaction (engine 0.29: BEGIN, updates, deletes, inserts, then COMMIT, ROLLBACK or a
 * crash) on a fixture-shaped table, with the LSNs involved. Sync-aware in a sync-enabled directory. */
export function transaction(dir: string, opts: TransactionOptions = {}): TransactionResult {
  const args: (string | number)[] = ['--table', opts.table ?? 'T'];
  if (opts.from !== undefined) args.push('--from', opts.from);
  if (opts.count !== undefined) args.push('--count', opts.count);
  if (opts.pad !== undefined) args.push('--pad', opts.pad);
  if (opts.updateEvery !== undefined) args.push('--update-every', opts.updateEvery);
  if (opts.deleteEvery !== undefined) args.push('--delete-every', opts.deleteEvery);
  if (opts.end === 'rollback') args.push('--rollback');
  if (opts.end === 'crash') args.push('--crash');
  return fixture('new', 'tx', dir, ...args);
}

/** What `work` resolves to, and the process warnings emitted meanwhile (those `keep` accepts). */
export async function warningsOf<T>(
  work: () => Promise<T>,
  keep: (message: string) => boolean = () => true,
): Promise<{ result: T; warnings: string[] }> {
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (keep(w.message)) warnings.push(w.message);
  };
  process.on('warning', onWarning);
  try {
    const result = await work();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    return { result, warnings };
  } finally {
    process.off('warning', onWarning);
  }
}
