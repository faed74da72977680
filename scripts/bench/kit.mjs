// What every part of the benchmark shares: running commands (synchronously:
// the s3 part has its own asynchronous runner), the CLIs under test, the
// cached pristine databases and their scratch copies, medians.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');
export const bin = (name) => join(root, 'target', 'release', name);
/** A helper script next to this module (measure.py, disk.py, api.mjs, lag.mjs). */
export const script = (name) => join(root, 'scripts', 'bench', name);
export const work = join(root, '.tmp', 'bench');
export const MB = 1e6;

export const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 }).trim();
/** The JSON object on the last line of a command's output (the line before may be progress). */
export const lastJson = (text) => JSON.parse(text.split('\n').at(-1));
export const json = (cmd, args) => lastJson(run(cmd, args));
/** The fixture tool on the engine generation the benchmark measures. */
export const fixture = (...args) => json(bin('powdb-fixture'), [...args, '--gen', 'new']);
/** Our CLI (as an argv), the way a user runs it: Node and dist/lib/cli.js. */
export const ours = (...args) => [process.execPath, join(root, 'dist', 'lib', 'cli.js'), ...args];
export const runOurs = (...args) => run(process.execPath, ours(...args).slice(1));
/** The reference crate `powdb-backup` 0.29.0 (tools/powdb-reference), as an argv. */
export const theirs = (...args) => [bin('powdb-reference'), ...args, '--gen', 'new'];

export const files = (dir) =>
  readdirSync(dir)
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
export const bytesOf = (dir) => files(dir).reduce((sum, p) => sum + statSync(p).size, 0);
export const fresh = (dir) => rmSync(dir, { recursive: true, force: true });
/** `sh` arguments that read `fileList` to /dev/null: the page cache warmed before a timed run. */
export const catArgs = (fileList) => ['-c', 'cat -- "$@" > /dev/null', 'warm', ...fileList];
export const warm = (...dirs) => dirs.forEach((d) => run('sh', catArgs(files(d))));

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** The median of one field of samples (measure.py's or disk.py's objects). */
export const med = (samples, key = 'secs') => median(samples.map((s) => s[key]));
/** Median wall time and peak RSS of a series of samples. */
export const summary = (samples) => ({ secs: med(samples), rss: Math.max(...samples.map((s) => s.rss_kib)) });
/** A number for a table; '-' where there is none (a median of no runs, a maximum of nothing). */
export const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** Wall time and peak RSS of one command (python's getrusage of the child). */
export const measure = (argv) => json('python3', [script('measure.py'), ...argv]);

/**
 * Row padding of the databases above 1 GiB (the disk and tables parts). The engine opens no index file over
 * 512 MB, which rows of the default size (about 74 bytes) pass at about 1.2 GiB of heap: it could not insert into or
 * update a 4 GiB database of them. Rows padded with 240 bytes keep the 4 GiB database's index near 440 MB.
 */
export const ROW_PAD = 240;
export const padFor = (mib) => (mib > 1024 ? ROW_PAD : undefined);

/** The pristine database of `mib` MiB (rows padded with `pad` bytes, else the fixture's 40), made once by the engine and cached. */
export function pristine(mib, pad) {
  const name = pad === undefined ? `db-${mib}` : `db-${mib}-pad${pad}`;
  const dir = join(work, name);
  const marker = join(work, `${name}.json`);
  if (!existsSync(marker)) {
    fresh(dir);
    console.error(`creating a ${mib} MiB database with the engine (cached in ${dir})...`);
    const padding = pad === undefined ? [] : ['--pad', String(pad)];
    writeFileSync(marker, JSON.stringify(fixture('bulk', dir, '--mib', String(mib), ...padding)));
  }
  return { dir, pad, ...JSON.parse(readFileSync(marker, 'utf8')) };
}

/** An empty scratch directory `name` under .tmp/bench, and a path maker inside it (no child process: the s3 part's loop must not block). */
export function scratch(name) {
  const dir = join(work, name);
  fresh(dir);
  mkdirSync(dir, { recursive: true });
  return { dir, at: (entry) => join(dir, entry) };
}

export function copyOf(src, dest) {
  fresh(dest);
  run('cp', ['-a', src, dest]);
  return dest;
}

/** The fixture's `--every` that updates about `fraction` of the heap pages of `db`. */
export function every(db, fraction) {
  const rowsPerPage = db.rows / (db.heap_bytes / 4096);
  return String(Math.max(1, Math.round(rowsPerPage / fraction)));
}

/** Fixture arguments inserting 1% more rows into the indexed table T of `dir` (a copy of `db`), padded as its rows are. */
export const growArgs = (dir, db) => [
  'insert',
  dir,
  '--table',
  'T',
  '--from',
  String(db.rows),
  '--count',
  String(Math.round(db.rows / 100)),
  ...(db.pad === undefined ? [] : ['--pad', String(db.pad)]),
];
/** The last line of a failed command's error output: why it failed. */
export const lastLine = (err) =>
  String(err.stderr || err.message)
    .trim()
    .split('\n')
    .at(-1);
/**
 * Inserts 1% more rows (growArgs); returns undefined, or why the engine
 * refused: it opens no index file over 512 MB (the 4 GiB database's is 1.6 GB).
 */
export function grow(dir, db) {
  try {
    fixture(...growArgs(dir, db));
  } catch (err) {
    return lastLine(err);
  }
}

/** Throws unless `dir`, opened by the engine, holds every row of `db`. */
export function checkRows(dir, db, who) {
  const count = fixture('report', dir).tables.T.count;
  if (count !== db.rows) throw new Error(`${who} has ${count} rows, expected ${db.rows}`);
}

/**
 * Throws unless `got` holds the files `want` does (with `exceptWal`, but the
 * checkpointed write-ahead log `wal.log`, which a restore leaves out); returns
 * the names in `got`, for the caller to compare byte by byte.
 */
export function sameNames(want, got, who, exceptWal) {
  const names = (d) =>
    readdirSync(d)
      .filter((n) => !(exceptWal && n === 'wal.log'))
      .sort()
      .join(',');
  if (names(want) !== names(got)) throw new Error(`${who}: ${got} has files ${names(got)}, expected ${names(want)}`);
  return readdirSync(got);
}
