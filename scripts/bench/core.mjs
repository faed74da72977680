// --part core: ours against the reference crate `powdb-backup` 0.29.0 (same
// engine generation) on the same data: full and incremental backups, a chain
// restore and verify; the machine's read ceilings, what the content maps
// cost and how late the JS thread runs during a backup.
import { join } from 'node:path';
import { readdirSync, statSync } from 'node:fs';
import {
  MB,
  bin,
  bytesOf,
  checkRows,
  copyOf,
  every,
  files,
  fixture,
  fresh,
  json,
  measure,
  med,
  median,
  ours,
  pristine,
  run,
  runOurs,
  scratch,
  script,
  summary,
  theirs,
  warm,
} from './kit.mjs';

/**
 * One row: alternates ours (the CLI) and theirs `c.runs` times on the same
 * data, page cache warmed alike; then times our operation in-process (`api`,
 * arguments of api.mjs) as well.
 */
function compare(c, label, { ourArgv, theirArgv, api, inputs, outputs = [] }) {
  const samples = { ours: [], theirs: [], api: [] };
  const prepare = () => {
    outputs.forEach(fresh);
    warm(...inputs);
  };
  for (let i = 0; i < c.runs; i++) {
    for (const [who, argv] of [
      ['ours', ourArgv],
      ['theirs', theirArgv],
    ]) {
      prepare();
      samples[who].push(measure(argv));
    }
    prepare();
    samples.api.push(json(process.execPath, [script('api.mjs'), ...api]));
  }
  outputs.forEach(fresh);
  return {
    label,
    mib: c.mib,
    bytes: c.bytes,
    ours: summary(samples.ours),
    theirs: summary(samples.theirs),
    apiSecs: med(samples.api),
  };
}

/** What this machine reads and hashes `dir` at, in MB/s. */
function ceilings(dir) {
  warm(dir);
  const secsOf = (argv) => median(Array.from({ length: 3 }, () => measure(argv).secs));
  const bytes = bytesOf(dir);
  return {
    cat: bytes / secsOf(['sh', '-c', `cat ${dir}/* > /dev/null`]) / MB,
    read: bytes / json(bin('powdb-bench'), ['read', ...files(dir)]).secs / MB,
    hash1: bytes / json(bin('powdb-bench'), ['hash', ...files(dir)]).secs / MB,
    hashAll: bytes / json(bin('powdb-bench'), ['hash', '--all-cores', ...files(dir)]).secs / MB,
  };
}

/** The full backup, then increments at 0.1%, 1% and 10% of the pages changed; leaves the base backup at `base`. */
function backups(c, base) {
  const { at, data } = c;
  const outputs = [at('o'), at('t')];
  const results = [
    compare(c, 'full backup', {
      ourArgv: ours('backup', data, at('o')),
      theirArgv: theirs('full', data, at('t')),
      api: ['full', data, at('o')],
      inputs: [data],
      outputs,
    }),
  ];
  runOurs('backup', data, base);
  for (const fraction of [0.001, 0.01, 0.1]) {
    copyOf(c.db.dir, data);
    fixture('update', data, '--every', every(c.db, fraction));
    results.push(
      compare(c, `incremental, ${fraction * 100}% pages changed`, {
        ourArgv: ours('backup', data, at('o'), '--base', base),
        theirArgv: theirs('incr', data, at('t'), '--base', base),
        api: ['incr', data, base, at('o')],
        inputs: [data],
        outputs,
      }),
    );
  }
  return results;
}

/**
 * Five increments of 1% each on a fresh copy (each on all the backups
 * before it), restored as a chain; the restore must be byte-identical and
 * hold every row. Returns the row and the increments.
 */
function chainRestore(c, base) {
  const { at, data } = c;
  copyOf(c.db.dir, data);
  const chain = [];
  for (let i = 1; i <= 5; i++) {
    fixture('update', data, '--every', every(c.db, 0.01));
    const inc = at(`inc${i}`);
    runOurs('backup', data, inc, ...[base, ...chain].flatMap((b) => ['--base', b]));
    chain.push(inc);
  }
  const apply = chain.flatMap((inc) => ['--apply', inc]);
  const result = compare(c, 'chain restore, full + 5 increments', {
    ourArgv: ours('restore', base, at('o'), ...apply),
    theirArgv: theirs('restore', base, at('t'), ...apply),
    api: ['restore', base, at('o'), ...chain],
    inputs: [base, ...chain],
    outputs: [at('o'), at('t')],
  });
  const restored = at('o');
  runOurs('restore', base, restored, ...apply);
  for (const name of readdirSync(restored)) run('cmp', [join(restored, name), join(data, name)]); // byte-identical
  checkRows(restored, c.db, 'chain restore');
  fresh(restored);
  return { result, chain };
}

/** What the content maps cost: one map per heap in every backup (16 bytes a page). */
function mapCosts(base, increment) {
  const sizeOf = (dir, suffix) =>
    files(dir)
      .filter((f) => f.endsWith(suffix))
      .reduce((sum, f) => sum + statSync(f).size, 0);
  return {
    heapBytes: sizeOf(base, '.heap'),
    mapBytes: sizeOf(base, '.pagemap'),
    incBytes: bytesOf(increment),
    incMapBytes: sizeOf(increment, '.pagemap'),
  };
}

export function benchSize(mib, runs) {
  const db = pristine(mib);
  const { dir, at } = scratch(`run-${mib}`);
  const data = copyOf(db.dir, at('data'));
  const c = { mib, runs, db, at, data, bytes: bytesOf(data) };
  const ceiling = ceilings(data);
  const base = at('base');
  const results = backups(c, base);
  const { result, chain } = chainRestore(c, base);
  results.push(
    result,
    compare(c, 'verify full backup', {
      ourArgv: ours('verify', base),
      theirArgv: theirs('verify', base),
      api: ['verify', base],
      inputs: [base],
    }),
  );
  const maps = mapCosts(base, chain[0]);
  warm(data);
  const lag = json(process.execPath, [script('lag.mjs'), data, at('lag')]);
  fresh(dir);
  return { mib, rows: db.rows, ceiling, results, lag, maps };
}
