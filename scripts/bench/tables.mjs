// --part tables: restoring one table against restoring the whole database, from a repository on disk and on a
// local S3 server (SeaweedFS). The data: the benchmark database (table T, indexed; rows padded above 1 GiB, as in
// the disk part) plus a table Small of about 1% of its rows, backed up once into each repository; then `restore`
// of everything, `restore --table Small` and `dump --table Small` (JSON Lines into a file), runs alternating, each into a fresh directory after a `sync`. The
// one-table restore includes what the whole one does not: fetching the catalog first and the engine's check of the
// result. Each one-table restore must equal the source's Small, as the engine reads it.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randomCredentials, startSeaweed } from '../s3/servers.mjs';
import {
  bin,
  bytesOf,
  copyOf,
  fixture,
  fmt,
  fresh,
  measure,
  ours,
  padFor,
  pristine,
  run,
  runOurs,
  scratch,
  summary,
} from './kit.mjs';
import { environments, jsonAsync, oursAsync, sampleAsync } from './s3kit.mjs';

/** The database with Small added, its engine dump of Small, and a local repository holding one backup of it. */
function prepare(mib) {
  const pad = padFor(mib);
  const db = pristine(mib, pad);
  const { dir, at } = scratch(`tables-${mib}`);
  const data = copyOf(db.dir, at('data'));
  const smallRows = Math.max(1, Math.round(db.rows / 100));
  const padding = pad === undefined ? [] : ['--pad', String(pad)];
  fixture('add-table', data, '--table', 'Small', '--rows', String(smallRows), '--index', ...padding);
  runOurs('init', at('repo'), '--compression', 'none');
  runOurs('backup', data, '--repo', at('repo'));
  return { mib, dir, at, data, pad, smallRows, dataBytes: bytesOf(data), source: fixture('dump', data).tables.Small };
}

/** Throws unless `out` holds Small alone, equal to the source's. */
function checkSmall(restored, c, where) {
  if (JSON.stringify(restored) !== JSON.stringify({ Small: c.source })) {
    throw new Error(`the one-table restore of Small (${where}) differs from the source: ${JSON.stringify(restored)}`);
  }
}

/** Alternating whole and one-table restores by `sample(argv, out)`; the byte counts of the last of each. */
async function alternate(c, runs, sample, restoreArgs, where) {
  const out = c.at('out');
  const whole = [];
  const table = [];
  const dump = [];
  const bytes = { whole: 0, table: 0, dump: 0 };
  for (let r = 0; r < runs; r++) {
    whole.push(await sample(ours('restore', ...restoreArgs, out), out));
    bytes.whole = bytesOf(out);
    table.push(await sample(ours('restore', ...restoreArgs, out, '--table', 'Small'), out));
    bytes.table = bytesOf(out);
    checkSmall((await jsonAsync(bin('powdb-fixture'), ['dump', out, '--gen', 'new'])).tables, c, where);
    const lines = `${out}.jsonl`;
    dump.push(await sample(ours('dump', ...restoreArgs, '--table', 'Small', '--output', lines), lines));
    const rows = readFileSync(lines, 'utf8').split('\n').filter(Boolean).length;
    if (rows !== c.smallRows) throw new Error(`dump of Small (${where}) wrote ${rows} rows, not ${c.smallRows}`);
    bytes.dump = statSync(lines).size;
    fresh(lines);
  }
  return { whole: summary(whole), table: summary(table), dump: summary(dump), bytes };
}

/** From the local repository. */
function local(c, runs) {
  const sample = (argv, out) => {
    fresh(out);
    run('sync', []);
    return measure(argv);
  };
  return alternate(c, runs, sample, ['--repo', c.at('repo')], 'local');
}

/** From an `s3://` repository on `server` holding one backup of the same data. */
async function s3(c, runs, server) {
  const env = environments(server).ours;
  const endpoint = ['--endpoint', server.endpoint];
  const repo = `s3://${server.bucket}/tables-${c.mib}`;
  await oursAsync(env, 'init', repo, '--compression', 'none', ...endpoint);
  await oursAsync(env, 'backup', c.data, '--repo', repo, ...endpoint);
  const sample = (argv, out) => sampleAsync([...argv, ...endpoint], env, async () => fresh(out));
  return alternate(c, runs, sample, ['--repo', repo], 's3');
}

/** Every size from a local repository, then (one SeaweedFS server for all) from S3. */
export async function benchTablesAll(sizes, runs) {
  const cases = sizes.map((mib) => prepare(mib));
  const results = [];
  for (const c of cases) results.push({ ...c, where: 'local', ...(await local(c, runs)) });
  const started = performance.now();
  const server = await startSeaweed({ bucket: 'powdb-bench', ...randomCredentials() });
  console.error(`tables: SeaweedFS at ${server.endpoint} (up in ${fmt((performance.now() - started) / 1000, 1)} s)`);
  try {
    for (const c of cases) results.push({ ...c, where: 's3', ...(await s3(c, runs, server)) });
  } finally {
    await server.stop();
    cases.forEach((c) => fresh(c.dir));
  }
  return results.map(({ mib, pad, smallRows, dataBytes, where, whole, table, dump, bytes }) => ({
    mib,
    pad,
    smallRows,
    dataBytes,
    where,
    whole,
    table,
    dump,
    bytes,
  }));
}
