// --part fleet: one repository for many databases. Deduplication across
// sources: database A (the benchmark database) backed up as source a; B, A's
// backup restored elsewhere and grown by 1% rows through the engine, backed up
// as source b; what B's backup adds against the bytes of B that differ from A
// (whole 4 KiB pages), and, the control, what a database of the same size with
// other rows adds (compression none: zstd would shrink both and hide the ratio).
// And time against the catalog's size: a synthetic repository of 10, 1,000 and
// 10,000 backups of 100 sources (fleet-synth.mjs), timing opening it, `info`,
// `info --json` and an increment of one source.
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { synthesize, sourceName } from './fleet-synth.mjs';
import {
  copyOf,
  fixture,
  fresh,
  grow,
  measure,
  median,
  ours,
  pristine,
  run,
  runOurs,
  scratch,
  script,
  summary,
} from './kit.mjs';

const PAGE = 4096;
const storedBytes = (repo) => JSON.parse(runOurs('info', '--repo', repo, '--json')).totals.stored_bytes;

/** Bytes of the files of `after` that differ from those of `before`, in whole pages (a new file: all of it). */
function changedBytes(before, after) {
  let changed = 0;
  const a = Buffer.alloc(1 << 20);
  const b = Buffer.alloc(1 << 20);
  for (const name of readdirSync(after)) {
    const size = statSync(join(after, name)).size;
    let fa;
    try {
      fa = openSync(join(before, name), 'r');
    } catch {
      changed += size;
      continue;
    }
    const fb = openSync(join(after, name), 'r');
    for (let at = 0; at < size; at += b.length) {
      const n = readSync(fb, b, 0, b.length, at);
      const m = readSync(fa, a, 0, a.length, at);
      for (let p = 0; p < n; p += PAGE) {
        const end = Math.min(n, p + PAGE);
        if (end > m || !b.subarray(p, end).equals(a.subarray(p, end))) changed += end - p;
      }
    }
    closeSync(fa);
    closeSync(fb);
  }
  return changed;
}

function benchDedup(mib) {
  const db = pristine(mib);
  const other = pristine(mib, 240); // the same size, longer rows: no page in common with A
  const { dir, at } = scratch(`fleet-${mib}`);
  const repo = at('repo');
  runOurs('init', repo, '--compression', 'none');
  const a = copyOf(db.dir, at('a'));
  runOurs('backup', a, '--repo', repo, '--source', 'a');
  const withA = storedBytes(repo);
  runOurs('restore', '--repo', repo, at('b'), '--source', 'a');
  const why = grow(at('b'), db);
  if (why) throw new Error(`growing B: ${why}`);
  const changed = changedBytes(a, at('b'));
  runOurs('backup', at('b'), '--repo', repo, '--source', 'b');
  const withB = storedBytes(repo);
  runOurs('backup', copyOf(other.dir, at('c')), '--repo', repo, '--source', 'c');
  const withC = storedBytes(repo);
  // B restores from the repository with every row.
  runOurs('restore', '--repo', repo, at('out'), '--source', 'b');
  const rows = fixture('report', at('out')).tables.T.count;
  const want = db.rows + Math.round(db.rows / 100);
  if (rows !== want) throw new Error(`B restored with ${rows} rows, expected ${want}`);
  fresh(dir);
  return { mib, withA, changed, addedB: withB - withA, addedC: withC - withB };
}

/** In-process time of opening the repository (api.mjs `open`: the catalog is not read). */
const openSecs = (repo) => JSON.parse(run(process.execPath, [script('api.mjs'), 'open', repo])).secs;

async function benchCount(backups, runs) {
  const sources = Math.min(100, backups);
  const { dir, at } = scratch(`fleet-count-${backups}`);
  const data = at('data');
  fixture('create', data, '--rows', '200', '--index');
  const started = performance.now();
  const dbs = await synthesize(at('repo'), data, backups, sources, dir);
  const made = (performance.now() - started) / 1000;
  const samples = { open: [], info: [], json: [], incr: [] };
  const one = dbs[7 % dbs.length];
  for (let r = 0; r < runs; r++) {
    samples.open.push(openSecs(at('repo')));
    samples.info.push(measure(ours('info', '--repo', at('repo'))));
    samples.json.push(measure(ours('info', '--repo', at('repo'), '--json')));
    fixture('insert', one, '--table', 'T', '--from', String(10_000 + 10 * r), '--count', '5');
    samples.incr.push(measure(ours('backup', one, '--repo', at('repo'), '--source', sourceName(7 % dbs.length))));
  }
  const check = JSON.parse(runOurs('info', '--repo', at('repo'), '--json'));
  if (check.backups.length !== backups + runs || check.sources.length !== sources) {
    throw new Error(
      `${check.backups.length} backups of ${check.sources.length} sources, expected ${backups + runs} of ${sources}`,
    );
  }
  fresh(dir);
  return {
    backups,
    sources,
    made,
    open: median(samples.open),
    info: summary(samples.info),
    json: summary(samples.json),
    incr: summary(samples.incr),
  };
}

export async function benchFleetAll(sizes, runs, smoke) {
  const dedup = sizes.map((mib) => benchDedup(mib));
  const counts = [];
  for (const n of smoke ? [10, 1000] : [10, 1000, 10_000]) counts.push(await benchCount(n, runs));
  return { dedup, counts };
}
