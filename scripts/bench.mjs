// `npm run bench`: ours against the reference crate `powdb-backup` (0.29.0, on
// the same engine generation), on databases the real engine creates.
//
//   node scripts/bench.mjs [--sizes 64,1024] [--big] [--runs 3] [--part all|core|repo|s3|disk] [--smoke] [--readme]
//
// --big adds 4096 MiB; --part picks the tables (core: against the reference;
// repo: format-2 repositories; s3: a repository on a local SeaweedFS against
// rclone; disk: ours as a percentage of the machine's ceilings, `cp -r` +
// `sync` and read + hash, CLI start-up and delta restore; at 1024 MiB unless
// --sizes is given); --smoke runs 64 MiB once and checks that restores are
// correct, without judging times; --readme rewrites the tables of the parts
// that ran in docs/benchmarks.md (linked from the README).
import { execFile, execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { RCLONE_VERSION, ensureRclone, rcloneEnv } from './s3/rclone.mjs';
import { SEAWEED_VERSION, randomCredentials, startSeaweed } from './s3/servers.mjs';

const root = join(import.meta.dirname, '..');
const bin = (name) => join(root, 'target', 'release', name);
const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string' },
    big: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    smoke: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
  },
});
const PARTS = ['core', 'repo', 's3', 'disk'];
if (opts.part !== 'all' && !PARTS.includes(opts.part)) {
  console.error(`--part: one of all, ${PARTS.join(', ')} (not ${opts.part})`);
  process.exit(2);
}
const sizesOf = (list) => (opts.smoke ? [64] : [...list.split(',').map(Number), ...(opts.big ? [4096] : [])]);
const sizes = sizesOf(opts.sizes ?? '64,1024');
const diskSizes = sizesOf(opts.sizes ?? '1024'); // the disk part: 1 GiB unless told
const runs = opts.smoke ? 1 : Number(opts.runs);
const work = join(root, '.tmp', 'bench');
const MB = 1e6;

const run = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 }).trim();
const json = (cmd, args) => JSON.parse(run(cmd, args).split('\n').at(-1));
const fixture = (...args) => json(bin('powdb-fixture'), [...args, '--gen', 'new']);
const ours = (...args) => [process.execPath, join(root, 'dist', 'lib', 'cli.js'), ...args];
const runOurs = (...args) => run(process.execPath, ours(...args).slice(1));
const theirs = (...args) => [bin('powdb-reference'), ...args, '--gen', 'new'];
const files = (dir) =>
  readdirSync(dir)
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
const bytesOf = (dir) => files(dir).reduce((sum, p) => sum + statSync(p).size, 0);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const fresh = (dir) => rmSync(dir, { recursive: true, force: true });
const warm = (...dirs) =>
  dirs.forEach((d) =>
    run('sh', [
      '-c',
      `cat ${files(d)
        .map((f) => `'${f}'`)
        .join(' ')} > /dev/null`,
    ]),
  );

/** Wall time and peak RSS of one command (python's getrusage of the child). */
function measure(argv) {
  return json('python3', [join(root, 'scripts', 'bench', 'measure.py'), ...argv]);
}

/** The pristine database of `mib` MiB (rows padded with `pad` bytes, else the fixture's 40), made once by the engine and cached. */
function pristine(mib, pad) {
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

/**
 * Row padding of the disk part's databases. The engine opens no index file
 * over 512 MB, which rows of the default size (about 74 bytes) pass at about
 * 1.2 GiB of heap: it could not insert into or update a 4 GiB database of them.
 * Rows padded with 240 bytes keep the 4 GiB database's index near 440 MB.
 */
const DISK_PAD = 240;
const diskPad = (mib) => (mib > 1024 ? DISK_PAD : undefined);

function copyOf(src, dest) {
  fresh(dest);
  run('cp', ['-a', src, dest]);
  return dest;
}

/**
 * Alternates ours (the CLI) and theirs `runs` times on the same data, page
 * cache warmed alike; then times our operation in-process (`api`) as well.
 */
function compare(label, mib, bytes, ourArgv, theirArgv, api, { inputs, outputs = [] }) {
  const samples = { ours: [], theirs: [], api: [] };
  const prepare = () => {
    outputs.forEach(fresh);
    warm(...inputs);
  };
  for (let i = 0; i < runs; i++) {
    for (const [who, argv] of [
      ['ours', ourArgv],
      ['theirs', theirArgv],
    ]) {
      prepare();
      samples[who].push(measure(argv));
    }
    prepare();
    samples.api.push(json(process.execPath, [join(root, 'scripts', 'bench', 'api.mjs'), ...api]));
  }
  outputs.forEach(fresh);
  const pick = (who) => ({
    secs: median(samples[who].map((s) => s.secs)),
    rss: Math.max(...samples[who].map((s) => s.rss_kib)),
  });
  return {
    label,
    mib,
    bytes,
    ours: pick('ours'),
    theirs: pick('theirs'),
    apiSecs: median(samples.api.map((s) => s.secs)),
  };
}

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

function benchSize(mib) {
  const db = pristine(mib);
  const dir = join(work, `run-${mib}`);
  const at = (name) => join(dir, name);
  fresh(dir);
  run('mkdir', ['-p', dir]);
  const data = copyOf(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  const ceiling = ceilings(data);
  const rowsPerPage = db.rows / (db.heap_bytes / 4096);
  const every = (fraction) => String(Math.max(1, Math.round(rowsPerPage / fraction)));
  const results = [];

  results.push(
    compare(
      'full backup',
      mib,
      dataBytes,
      ours('backup', data, at('o')),
      theirs('full', data, at('t')),
      ['full', data, at('o')],
      {
        inputs: [data],
        outputs: [at('o'), at('t')],
      },
    ),
  );
  const base = at('base');
  runOurs('backup', data, base);

  for (const fraction of [0.001, 0.01, 0.1]) {
    copyOf(db.dir, data);
    fixture('update', data, '--every', every(fraction));
    results.push(
      compare(
        `incremental, ${fraction * 100}% pages changed`,
        mib,
        dataBytes,
        ours('backup', data, at('o'), '--base', base),
        theirs('incr', data, at('t'), '--base', base),
        ['incr', data, base, at('o')],
        {
          inputs: [data],
          outputs: [at('o'), at('t')],
        },
      ),
    );
  }

  copyOf(db.dir, data);
  const chain = [];
  for (let i = 1; i <= 5; i++) {
    fixture('update', data, '--every', every(0.01));
    const inc = at(`inc${i}`);
    runOurs('backup', data, inc, ...[base, ...chain].flatMap((b) => ['--base', b]));
    chain.push(inc);
  }
  const apply = chain.flatMap((c) => ['--apply', c]);
  results.push(
    compare(
      'chain restore, full + 5 increments',
      mib,
      dataBytes,
      ours('restore', base, at('o'), ...apply),
      theirs('restore', base, at('t'), ...apply),
      ['restore', base, at('o'), ...chain],
      {
        inputs: [base, ...chain],
        outputs: [at('o'), at('t')],
      },
    ),
  );
  const restored = at('o');
  runOurs('restore', base, restored, ...apply);
  for (const name of readdirSync(restored)) run('cmp', [join(restored, name), join(data, name)]); // byte-identical
  const rows = json(bin('powdb-fixture'), ['report', restored, '--gen', 'new']).tables.T.count;
  if (rows !== db.rows) throw new Error(`chain restore has ${rows} rows, expected ${db.rows}`);
  fresh(restored);
  results.push(
    compare('verify full backup', mib, dataBytes, ours('verify', base), theirs('verify', base), ['verify', base], {
      inputs: [base],
    }),
  );

  // What the content maps cost: one map per heap in every backup (16 bytes a page).
  const sizeOf = (dir, test) =>
    files(dir)
      .filter((f) => test(f))
      .reduce((sum, f) => sum + statSync(f).size, 0);
  const maps = {
    heapBytes: sizeOf(base, (f) => f.endsWith('.heap')),
    mapBytes: sizeOf(base, (f) => f.endsWith('.pagemap')),
    incBytes: bytesOf(chain[0]),
    incMapBytes: sizeOf(chain[0], (f) => f.endsWith('.pagemap')),
  };

  warm(data);
  const lag = json(process.execPath, [join(root, 'scripts', 'bench', 'lag.mjs'), data, at('lag')]);
  fresh(dir);
  return { mib, rows: db.rows, ceiling, results, lag, maps };
}

/** One timed run of `argv` after `prepare()` and a `sync` (fsync-bound timings are bimodal otherwise). */
function sample(argv, prepare) {
  prepare();
  run('sync', []);
  return measure(argv);
}

/** Median wall time and peak RSS of each sample series. */
const summary = (samples) => ({
  secs: median(samples.map((s) => s.secs)),
  rss: Math.max(...samples.map((s) => s.rss_kib)),
});

/**
 * Format-2 repositories: full backup and restore for each kind (zstd, none,
 * zstd + encryption) against our plain directory backup and restore, runs
 * alternating, and what an increment after inserting 1% more rows into the
 * indexed table stores.
 */
function benchRepo(mib) {
  const db = pristine(mib);
  const dir = join(work, `repo-${mib}`);
  const at = (name) => join(dir, name);
  fresh(dir);
  run('mkdir', ['-p', dir]);
  process.env.POWDB_BACKUP_PASSWORD ??= 'bench password';
  const data = copyOf(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  const plainBase = at('plain-base');
  const kinds = [
    ['zstd (default)', []],
    ['none', ['--compression', 'none']],
    ['zstd, encrypted', ['--encrypt']],
  ].map(([kind, flags], i) => ({ kind, flags, repo: at(`repo${i}`), backups: [], restores: [] }));
  const plain = { backups: [], restores: [] };
  for (let r = 0; r < runs; r++) {
    plain.backups.push(sample(ours('backup', data, plainBase), () => (fresh(plainBase), warm(data))));
    for (const k of kinds) {
      const prepare = () => (fresh(k.repo), runOurs('init', k.repo, ...k.flags), warm(data));
      k.backups.push(sample(ours('backup', data, '--repo', k.repo), prepare));
    }
  }
  for (let r = 0; r < runs; r++) {
    plain.restores.push(sample(ours('restore', plainBase, at('out')), () => (fresh(at('out')), warm(plainBase))));
    for (const k of kinds)
      k.restores.push(sample(ours('restore', '--repo', k.repo, at('out')), () => fresh(at('out'))));
  }
  const repos = kinds.map((k) => ({
    kind: k.kind,
    repo: k.repo,
    backup: summary(k.backups),
    restore: summary(k.restores),
    stored: JSON.parse(runOurs('info', '--repo', k.repo, '--json')).backups[0].stored_bytes,
  }));
  // +1% rows into the indexed table: heap pages at the end, and an index that shifts.
  try {
    fixture('insert', data, '--table', 'T', '--from', String(db.rows), '--count', String(Math.round(db.rows / 100)));
  } catch (err) {
    // The engine refuses to open an index file over 512 MB (the 4 GiB database's is 1.6 GB).
    const why = String(err.stderr ?? err.message)
      .trim()
      .split('\n')
      .at(-1);
    fresh(dir);
    const plainSummary = { backup: summary(plain.backups), restore: summary(plain.restores) };
    return { mib, dataBytes, plain: plainSummary, repos, changedPages: 0, increments: [], skipped: why };
  }
  // Each increment once, timed (warm cache; the repository ones after their full backup above).
  const timedOnce = (argv) => sample(argv, () => warm(data));
  const plainTimed = timedOnce(ours('backup', data, at('plain-inc'), '--base', plainBase));
  const plainInc = JSON.parse(readFileSync(join(at('plain-inc'), 'increment.json'), 'utf8'));
  const changedPages = plainInc.changed.reduce((n, c) => n + (c.Pages ? c.Pages.page_indices.length : 0), 0);
  const refTimed = timedOnce(theirs('incr', data, at('ref-inc'), '--base', plainBase));
  const increments = [
    { who: 'reference crate, incremental', bytes: bytesOf(at('ref-inc')), ...refTimed },
    { who: 'ours, plain incremental (reference format)', bytes: bytesOf(at('plain-inc')), ...plainTimed },
    ...repos.slice(0, 2).map((r) => {
      const t = timedOnce(ours('backup', data, '--repo', r.repo));
      const newest = JSON.parse(runOurs('info', '--repo', r.repo, '--json')).backups.at(-1);
      return { who: `ours, repository, compression ${r.kind}`, bytes: Number(newest.stored_bytes), ...t };
    }),
  ];
  fresh(dir);
  return {
    mib,
    dataBytes,
    plain: { backup: summary(plain.backups), restore: summary(plain.restores) },
    repos,
    changedPages,
    increments,
  };
}

const fmt = (n, digits = 2) => n.toFixed(digits);
function repoTable(all) {
  const lines = [
    '| data | repository | full backup (s) | / plain full backup | restore (s) | / plain restore | peak RSS backup, restore (MiB) | stored by the full backup | data / stored |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    lines.push(
      `| ${s.mib} MiB | plain directory (reference format) | ${fmt(s.plain.backup.secs)} | 1.00 | ${fmt(s.plain.restore.secs)} | 1.00 | ${fmt(s.plain.backup.rss / 1024, 1)}, ${fmt(s.plain.restore.rss / 1024, 1)} | ${fmt(s.dataBytes / MB, 1)} MB | 1.0 |`,
    );
    for (const r of s.repos) {
      lines.push(
        `| ${s.mib} MiB | ${r.kind} | ${fmt(r.backup.secs)} | ${fmt(r.backup.secs / s.plain.backup.secs)} | ${fmt(r.restore.secs)} | ${fmt(r.restore.secs / s.plain.restore.secs)} | ${fmt(r.backup.rss / 1024, 1)}, ${fmt(r.restore.rss / 1024, 1)} | ${fmt(Number(r.stored) / MB, 1)} MB | ${fmt(s.dataBytes / Number(r.stored), 1)} |`,
      );
    }
  }
  lines.push(
    '',
    '| data | increment after inserting 1% more rows (indexed table) | bytes stored | / bytes of the heap pages that changed | time (s) | peak RSS (MiB) |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    if (s.skipped) {
      lines.push(`| ${s.mib} MiB | not measured: the engine cannot insert (${s.skipped}) | | | | |`);
      continue;
    }
    const changed = s.changedPages * 4096;
    lines.push(`| ${s.mib} MiB | heap pages that changed: ${s.changedPages} | ${fmt(changed / MB, 2)} MB | 1.00 | | |`);
    for (const inc of s.increments) {
      lines.push(
        `| ${s.mib} MiB | ${inc.who} | ${fmt(inc.bytes / MB, 2)} MB | ${fmt(inc.bytes / changed)} | ${fmt(inc.secs)} | ${fmt(inc.rss_kib / 1024, 1)} |`,
      );
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- object storage (--part s3)
//
// While the S3 server runs, every command goes through the event loop (never
// execFileSync): the server's output comes to this process through a pipe,
// and a blocked loop would let that pipe fill and stall the server.

const execFileAsync = promisify(execFile);
const runAsync = async (cmd, args, env = process.env) =>
  (await execFileAsync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, env })).stdout.trim();
const jsonAsync = async (cmd, args, env) => JSON.parse((await runAsync(cmd, args, env)).split('\n').at(-1));
const measureAsync = (argv, env) => jsonAsync('python3', [join(root, 'scripts', 'bench', 'measure.py'), ...argv], env);
const warmAsync = (dir) => runAsync('sh', ['-c', 'cat -- "$@" > /dev/null', 'warm', ...files(dir)]);
const copyOfAsync = async (src, dest) => {
  fresh(dest);
  await runAsync('cp', ['-a', src, dest]);
  return dest;
};
/** Like sample(): one timed run of `argv` (with `env`) after `await prepare()` and a `sync`. */
async function sampleAsync(argv, env, prepare) {
  await prepare();
  await runAsync('sync', []);
  return measureAsync(argv, env);
}
/**
 * Throws unless `got` holds the files of `want`, byte-identical (a restore
 * leaves out the checkpointed write-ahead log `wal.log`; rclone copies it).
 */
async function sameFiles(want, got, who, { exceptWal = false } = {}) {
  const names = (d) =>
    readdirSync(d)
      .filter((n) => !(exceptWal && n === 'wal.log'))
      .sort()
      .join(',');
  if (names(want) !== names(got)) throw new Error(`${who}: ${got} has files ${names(got)}, expected ${names(want)}`);
  for (const name of readdirSync(got)) await runAsync('cmp', [join(want, name), join(got, name)]);
}
/** The environment without the variables matching `drop` (none of the user's S3 settings leak in). */
const envWithout = (drop) => Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.test(k)));

/**
 * Object storage: on a SeaweedFS server on 127.0.0.1 (`server`), for each
 * run a full backup of the data directory into a fresh `s3://` prefix (a
 * plain repository, default compression) against `rclone copy` uploading the
 * same directory to another fresh prefix, the restore of that backup against
 * `rclone copy` downloading that upload, and an increment after inserting 1%
 * more rows (into a copy) against the full backup. Ours and rclone's runs
 * alternate, which goes first swapping every run.
 */
async function benchS3(mib, server, rclone) {
  const db = pristine(mib);
  const dir = join(work, `s3-${mib}`);
  const at = (name) => join(dir, name);
  fresh(dir);
  mkdirSync(dir, { recursive: true });
  const data = await copyOfAsync(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  // +1% rows into the indexed table, on a copy (as the repo part does).
  const changed = await copyOfAsync(db.dir, at('changed'));
  let skipped;
  try {
    const count = String(Math.round(db.rows / 100));
    await jsonAsync(bin('powdb-fixture'), [
      'insert',
      changed,
      '--table',
      'T',
      '--from',
      String(db.rows),
      '--count',
      count,
      '--gen',
      'new',
    ]);
  } catch (err) {
    // The engine refuses to open an index file over 512 MB (the 4 GiB database's is 1.6 GB).
    skipped = String(err.stderr || err.message)
      .trim()
      .split('\n')
      .at(-1);
  }
  const out = at('out');
  const endpoint = ['--endpoint', server.endpoint];
  const ourEnv = {
    ...envWithout(/^(AWS_|POWDB_BACKUP_PASSWORD$)/),
    AWS_ACCESS_KEY_ID: server.accessKey,
    AWS_SECRET_ACCESS_KEY: server.secretKey,
    AWS_REGION: server.region,
    AWS_ALLOW_HTTP: 'true',
  };
  // No config file: the remote `bench` comes from RCLONE_CONFIG_BENCH_* alone.
  const rcloneEnvironment = { ...envWithout(/^RCLONE_/), ...rcloneEnv('bench', server), RCLONE_CONFIG: '' };
  const rcloneCopy = (from, to, ...flags) => [rclone, 'copy', from, to, '--transfers', '4', ...flags];
  const samples = { backup: [], upload: [], restore: [], download: [], increment: [] };
  const stored = { full: [], increment: [] };
  for (let r = 0; r < runs; r++) {
    const prefix = `${mib}mib-run${r}`;
    const repo = `s3://${server.bucket}/${prefix}/ours`;
    const remote = `bench:${server.bucket}/${prefix}/rclone`;
    await runAsync(process.execPath, ours('init', repo, ...endpoint).slice(1), ourEnv); // untimed
    const pair = (a, b) => (r % 2 === 0 ? [a, b] : [b, a]);
    for (const step of pair(
      async () =>
        samples.backup.push(
          await sampleAsync(ours('backup', data, '--repo', repo, ...endpoint), ourEnv, () => warmAsync(data)),
        ),
      async () =>
        samples.upload.push(
          await sampleAsync(rcloneCopy(data, remote, '--s3-no-check-bucket'), rcloneEnvironment, () => warmAsync(data)),
        ),
    ))
      await step();
    for (const step of pair(
      async () => {
        samples.restore.push(
          await sampleAsync(ours('restore', '--repo', repo, out, ...endpoint), ourEnv, () => fresh(out)),
        );
        await sameFiles(data, out, 'our restore from S3', { exceptWal: true });
        fresh(out);
      },
      async () => {
        // Then `sync`: our restore is durable when it ends (every file fsynced), rclone's is not.
        const durably = ['sh', '-c', '"$0" "$@" && sync', ...rcloneCopy(remote, out)];
        samples.download.push(await sampleAsync(durably, rcloneEnvironment, () => fresh(out)));
        await sameFiles(data, out, 'rclone download');
        fresh(out);
      },
    ))
      await step();
    if (!skipped) {
      samples.increment.push(
        await sampleAsync(ours('backup', changed, '--repo', repo, '--same-database', ...endpoint), ourEnv, () =>
          warmAsync(changed),
        ),
      );
    }
    const info = await runAsync(process.execPath, ours('info', '--repo', repo, ...endpoint, '--json').slice(1), ourEnv);
    const { backups } = JSON.parse(info);
    stored.full.push(Number(backups[0].stored_bytes));
    if (!skipped) stored.increment.push(Number(backups[1].stored_bytes));
    // Each run's seconds on stderr: the medians hide how much fsync-bound samples swing.
    const last = (k) => (samples[k].length ? fmt(samples[k].at(-1).secs) : '-');
    console.error(
      `s3 ${mib} MiB run ${r + 1}: backup ${last('backup')} upload ${last('upload')} restore ${last('restore')} download ${last('download')} increment ${last('increment')}`,
    );
  }
  fresh(dir);
  return {
    mib,
    dataBytes,
    backup: summary(samples.backup),
    upload: summary(samples.upload),
    restore: summary(samples.restore),
    download: summary(samples.download),
    increment: skipped ? undefined : summary(samples.increment),
    stored: { full: median(stored.full), increment: skipped ? undefined : median(stored.increment) },
    skipped,
  };
}

/** Starts SeaweedFS, runs benchS3 for each size, and stops the server, also on failure. */
async function benchS3All() {
  sizes.forEach(pristine); // any database to create is made before the server runs
  const rclone = await ensureRclone();
  const started = performance.now();
  const server = await startSeaweed({ bucket: 'powdb-bench', ...randomCredentials() });
  console.error(
    `s3: SeaweedFS at ${server.endpoint} (up in ${fmt((performance.now() - started) / 1000, 1)} s), rclone ${rclone}`,
  );
  try {
    const all = [];
    for (const mib of sizes) all.push(await benchS3(mib, server, rclone));
    return all;
  } catch (err) {
    const log = server.log().trim().split('\n').slice(-20).join('\n');
    err.message += `\n--- the last lines of the SeaweedFS log ---\n${log}`;
    throw err;
  } finally {
    await server.stop();
  }
}

function s3Table(all) {
  const lines = [
    '| data | operation | ours (s) | compared with | its time (s) | ours / it | goal | ours peak RSS (MiB; goal ≤ 128) | its peak RSS (MiB) | bytes: ours, its |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const mb = (n) => `${fmt(n / MB, 1)} MB`;
  for (const s of all) {
    lines.push(
      `| ${s.mib} MiB | full backup to S3 (zstd) | ${fmt(s.backup.secs)} | \`rclone copy\` upload, \`--transfers 4\` | ${fmt(s.upload.secs)} | ${fmt(s.backup.secs / s.upload.secs)} | ≤ 1.0 | ${fmt(s.backup.rss / 1024, 1)} | ${fmt(s.upload.rss / 1024, 1)} | ${mb(s.stored.full)} stored, ${mb(s.dataBytes)} uploaded |`,
      `| ${s.mib} MiB | restore from S3 | ${fmt(s.restore.secs)} | \`rclone copy\` download of that upload, then \`sync\` | ${fmt(s.download.secs)} | ${fmt(s.restore.secs / s.download.secs)} | ≤ 1.0 | ${fmt(s.restore.rss / 1024, 1)} | ${fmt(s.download.rss / 1024, 1)} | ${mb(s.stored.full)}, ${mb(s.dataBytes)} fetched |`,
    );
    if (s.skipped) {
      lines.push(
        `| ${s.mib} MiB | increment after inserting 1% more rows: not measured, the engine cannot insert (${s.skipped}) | | | | | ≤ 0.2 | | | |`,
      );
    } else {
      lines.push(
        `| ${s.mib} MiB | increment after inserting 1% more rows | ${fmt(s.increment.secs)} | our full backup to S3 (above) | ${fmt(s.backup.secs)} | ${fmt(s.increment.secs / s.backup.secs)} | ≤ 0.2 | ${fmt(s.increment.rss / 1024, 1)} | ${fmt(s.backup.rss / 1024, 1)} | ${mb(s.stored.increment)}, ${mb(s.stored.full)} stored |`,
      );
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------- the disk's ceilings (--part disk)
//
// Ours as a percentage of what this machine can do at all, measured in the
// same run on the same bytes: `cp -r` of the data directory plus `sync` for
// full backups and restores, reading plus hashing every file for incrementals
// and verify. fsync-bound timings are bimodal on this disk, so each side runs
// `runs` times, the sides alternating (which goes first rotating every run),
// each sample after its preparation, a `sync` and a pause; medians compared.

const diskPy = (...args) => json('python3', [join(root, 'scripts', 'bench', 'disk.py'), ...args]);
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const PAUSE_MS = opts.smoke ? 100 : 1000;
/** Every file under `dir`, subdirectories included (a repository's packs and index). */
const treeFiles = (dir) =>
  readdirSync(dir, { recursive: true })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
const warmTree = (dir) => run('sh', ['-c', 'cat -- "$@" > /dev/null', 'warm', ...treeFiles(dir)]);
/** Throws unless `got` holds the files of `want` (but `wal.log`, which a restore leaves out), byte-identical. */
function sameFilesSync(want, got, who) {
  const names = (d) =>
    readdirSync(d)
      .filter((n) => n !== 'wal.log')
      .sort()
      .join(',');
  if (names(want) !== names(got)) throw new Error(`${who}: ${got} has files ${names(got)}, expected ${names(want)}`);
  for (const name of readdirSync(got)) run('cmp', [join(want, name), join(got, name)]);
}

/** Bytes the block device holding the bench's files has written since boot (whole machine). */
const blockDevice = () => run('findmnt', ['-no', 'SOURCE', '-T', work]).split('/').at(-1);
const deviceWritten = () =>
  Number(readFileSync(`/sys/class/block/${blockDevice()}/stat`, 'utf8').trim().split(/\s+/)[6]) * 512;

/**
 * Runs each of `sides` ({ name, argv | sample(), prepare?(), check?(), device? })
 * `runs` times, alternating; returns each side's samples (disk.py run: secs,
 * rss_kib and the child's /proc I/O counters; with `device`, also
 * `device_bytes`: what the device wrote during the run and a `sync` after it,
 * untimed). `check` runs after a side's first sample, untimed.
 */
function alternate(sides) {
  const samples = Object.fromEntries(sides.map((s) => [s.name, []]));
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < sides.length; i++) {
      const side = sides[(i + r) % sides.length];
      side.prepare?.();
      run('sync', []);
      pause(PAUSE_MS);
      const written = deviceWritten();
      const sample = side.sample ? side.sample() : diskPy('run', ...side.argv);
      if (side.device) {
        run('sync', []); // untimed: what the run left dirty reaches the device too
        sample.device_bytes = deviceWritten() - written;
      }
      samples[side.name].push(sample);
      if (r === 0) side.check?.();
    }
  }
  return samples;
}
const fsInfo = () => `${run('findmnt', ['-no', 'FSTYPE', '-T', work])} on Linux ${run('uname', ['-r'])}`;
const med = (samples, key = 'secs') => median(samples.map((s) => s[key]));

/** The two ceilings, as sides of alternate(). */
const cpSyncSide = (from, to) => ({
  name: 'ceiling',
  argv: ['sh', '-c', 'cp -r -- "$0" "$1" && sync', from, to],
  prepare: () => (fresh(to), warm(from)),
});
/** Reading and BLAKE3-hashing `files` (tools/powdb-bench, Rust): the faster of 1 MiB reads on one core and mmap on all cores. */
const readHashSide = (fileList, prepare) => ({
  name: 'ceiling',
  prepare,
  sample: () => {
    const one = diskPy('run', bin('powdb-bench'), 'hash', ...fileList);
    const all = diskPy('run', bin('powdb-bench'), 'hash', '--all-cores', ...fileList);
    return one.secs <= all.secs ? one : all;
  },
});

function benchDisk(mib) {
  const db = pristine(mib, diskPad(mib));
  const dir = join(work, `disk-${mib}`);
  const at = (name) => join(dir, name);
  fresh(dir);
  mkdirSync(dir, { recursive: true });
  const data = copyOf(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  const dataFiles = files(data);
  const out = at('out');
  const cpOut = at('cp');
  const rows = [];
  const ourRow = (op, samples, ceiling, goal) => {
    const ours = med(samples.ours);
    const c = med(samples.ceiling);
    return { op, ours, ceiling, ceilingSecs: c, rate: dataBytes / c / MB, pct: (100 * c) / ours, goal };
  };
  const CP = '`cp -r` + `sync`';
  const RH = 'read + BLAKE3';

  // Full backups: a directory, and a format-2 repository (default: zstd).
  const dest = at('backup');
  const repo = at('repo');
  let s = alternate([
    { name: 'ours', argv: ours('backup', data, dest), prepare: () => (fresh(dest), warm(data)) },
    cpSyncSide(data, cpOut),
  ]);
  rows.push(ourRow('full backup, directory', s, CP, 85));
  s = alternate([
    {
      name: 'ours',
      argv: ours('backup', data, '--repo', repo),
      prepare: () => (fresh(repo), runOurs('init', repo), warm(data)),
    },
    cpSyncSide(data, cpOut),
  ]);
  rows.push(ourRow('full backup, repository (zstd)', s, CP, 85));
  // The same without compression: what the rest of the data path costs (zstd level 1 runs at 300-530 MB/s per core here).
  s = alternate([
    {
      name: 'ours',
      argv: ours('backup', data, '--repo', repo),
      prepare: () => (fresh(repo), runOurs('init', repo, '--compression', 'none'), warm(data)),
    },
    cpSyncSide(data, cpOut),
  ]);
  rows.push(ourRow('full backup, repository (no compression)', s, CP, 85));
  fresh(dest);
  fresh(cpOut);
  // The backups the rest reads (untimed).
  const base = at('base');
  runOurs('backup', data, base);
  const tmpl = at('repo-full');
  fresh(repo);
  runOurs('init', tmpl);
  runOurs('backup', data, '--repo', tmpl);
  const tmplNone = at('repo-none');
  runOurs('init', tmplNone, '--compression', 'none');
  runOurs('backup', data, '--repo', tmplNone);

  // Restores; the directory one also against copy_file_range(2) of the backup's data files.
  const cfrOut = at('cfr');
  const restoredNames = readdirSync(data).filter((n) => n !== 'wal.log');
  s = alternate([
    {
      name: 'ours',
      argv: ours('restore', base, out),
      prepare: () => (fresh(out), warm(base)),
      check: () => sameFilesSync(data, out, 'restore from a directory'),
    },
    cpSyncSide(data, cpOut),
    {
      name: 'cfr',
      argv: [
        'python3',
        join(root, 'scripts', 'bench', 'disk.py'),
        'cfr',
        cfrOut,
        ...restoredNames.map((n) => join(base, n)),
      ],
      prepare: () => (fresh(cfrOut), warm(base)),
      check: () => sameFilesSync(data, cfrOut, 'copy_file_range'),
    },
  ]);
  rows.push(ourRow('restore, directory', s, CP, 85));
  const cfr = { ours: med(s.ours), secs: med(s.cfr), reflink: JSON.parse(s.cfr[0].out ?? '{}').reflink };
  fresh(cfrOut);
  s = alternate([
    {
      name: 'ours',
      argv: ours('restore', '--repo', tmpl, out),
      prepare: () => (fresh(out), warmTree(tmpl)),
      check: () => sameFilesSync(data, out, 'restore from a repository'),
    },
    cpSyncSide(data, cpOut),
  ]);
  rows.push(ourRow('restore, repository (zstd)', s, CP, 85));
  s = alternate([
    {
      name: 'ours',
      argv: ours('restore', '--repo', tmplNone, out),
      prepare: () => (fresh(out), warmTree(tmplNone)),
      check: () => sameFilesSync(data, out, 'restore from an uncompressed repository'),
    },
    cpSyncSide(data, cpOut),
  ]);
  rows.push(ourRow('restore, repository (no compression)', s, CP, 85));
  fresh(out);
  fresh(cpOut);

  // Incrementals after inserting 1% more rows (indexed table), against reading and hashing the data directory.
  const rowsPerPage = db.rows / (db.heap_bytes / 4096);
  const updated = () => {
    const u = copyOf(db.dir, at('updated'));
    fixture('update', u, '--every', String(Math.max(1, Math.round(rowsPerPage / 0.01))));
    return u;
  };
  let changed = copyOf(db.dir, at('grown'));
  let changedHow = 'inserting 1% more rows';
  let skipped;
  try {
    const padding = db.pad === undefined ? [] : ['--pad', String(db.pad)];
    const count = String(Math.round(db.rows / 100));
    fixture('insert', changed, '--table', 'T', '--from', String(db.rows), '--count', count, ...padding);
  } catch (err) {
    // The engine refuses to open an index file over 512 MB (see diskPad).
    skipped = String(err.stderr ?? err.message)
      .trim()
      .split('\n')
      .at(-1);
    fresh(changed);
    changed = updated();
    changedHow = 'updating 1% of the heap pages (the engine cannot insert at this size)';
  }
  const changedFiles = files(changed);
  const inc = at('inc');
  s = alternate([
    {
      name: 'ours',
      argv: ours('backup', changed, inc, '--base', base),
      prepare: () => (fresh(inc), warm(changed)),
    },
    readHashSide(changedFiles, () => warm(changed)),
  ]);
  rows.push(ourRow(`incremental after ${changedHow}, directory`, s, `${RH} of the data directory`, 90));
  const incRepo = at('repo-inc');
  s = alternate([
    {
      name: 'ours',
      argv: ours('backup', changed, '--repo', incRepo, '--same-database'), // a changed copy of the database
      prepare: () => (fresh(incRepo), run('cp', ['-a', tmpl, incRepo]), warm(changed)),
    },
    readHashSide(changedFiles, () => warm(changed)),
  ]);
  rows.push(ourRow(`incremental after ${changedHow}, repository`, s, `${RH} of the data directory`, 90));
  fresh(inc);
  fresh(incRepo);
  if (!skipped) fresh(changed);

  // Verify, against reading and hashing the backup's files (a repository: the data it holds, uncompressed).
  s = alternate([
    { name: 'ours', argv: ours('verify', base), prepare: () => warm(base) },
    readHashSide(files(base), () => warm(base)),
  ]);
  rows.push(ourRow('verify, directory', s, `${RH} of the backup's files`, 90));
  s = alternate([
    { name: 'ours', argv: ours('verify', '--repo', tmpl), prepare: () => warmTree(tmpl) },
    readHashSide(dataFiles, () => warm(data)),
  ]);
  rows.push(ourRow('verify, repository (zstd)', s, `${RH} of the data directory (what the backup holds)`, 90));
  s = alternate([
    { name: 'ours', argv: ours('verify', '--repo', tmplNone), prepare: () => warmTree(tmplNone) },
    readHashSide(dataFiles, () => warm(data)),
  ]);
  rows.push(
    ourRow('verify, repository (no compression)', s, `${RH} of the data directory (what the backup holds)`, 90),
  );
  fresh(tmplNone);

  // Delta restore: the newer backup onto a plain restore of the older, which differs in 1% of its heap pages.
  const upd = skipped ? changed : updated();
  const incU = at('inc-updated');
  runOurs('backup', upd, incU, '--base', base);
  const old = at('old');
  runOurs('restore', base, old);
  const repoD = at('repo-delta');
  run('cp', ['-a', tmpl, repoD]);
  runOurs('backup', upd, '--repo', repoD, '--same-database'); // a changed copy of the database
  const oldR = at('old-repo');
  runOurs('restore', '--repo', tmpl, oldR);
  const deltas = [];
  for (const [source, argv, older, warmSource] of [
    ['directory chain (full + 1 increment)', ['restore', base, out, '--apply', incU], old, () => warm(base, incU)],
    ['repository', ['restore', '--repo', repoD, out], oldR, () => warmTree(repoD)],
  ]) {
    s = alternate([
      { name: 'plain', argv: ours(...argv, '--json'), prepare: () => (fresh(out), warmSource()), device: true },
      {
        name: 'delta',
        argv: ours(...argv, '--delta', '--json'),
        device: true,
        prepare: () => (copyOf(older, out), warmSource()),
        check: () => {
          sameFilesSync(upd, out, `delta restore from a ${source}`);
          if (source === 'repository') return;
          const count = json(bin('powdb-fixture'), ['report', out, '--gen', 'new']).tables.T.count;
          if (count !== db.rows) throw new Error(`delta restore has ${count} rows, expected ${db.rows}`);
        },
      },
    ]);
    const summaryOf = JSON.parse(s.delta[0].out).delta;
    deltas.push({
      source,
      ...Object.fromEntries(
        ['plain', 'delta'].map((k) => [
          k,
          {
            secs: med(s[k]),
            write: med(s[k], 'write_bytes'),
            wchar: med(s[k], 'wchar'),
            device: med(s[k], 'device_bytes'),
          },
        ]),
      ),
      summary: summaryOf,
    });
  }
  fresh(dir);
  return { mib, dataBytes, rows, cfr, deltas };
}

/** Process start to exit of commands that do no work: an upper bound of the start-up. */
function startup() {
  const n = opts.smoke ? 3 : 10;
  const time = (argv) => median(diskPy('times', String(n), ...argv).secs);
  return {
    n,
    rows: [
      ['`node -e 0` (reference: Node alone)', time([process.execPath, '-e', '0']), undefined],
      ['`powdb-backup --version`', time(ours('--version')), 0.06],
      ['`powdb-backup verify /nonexistent` (fails: not a backup)', time(ours('verify', '/nonexistent')), 0.06],
    ],
  };
}

function diskTable(all, start) {
  const met = (ok) => (ok ? 'met' : '**not met**');
  const lines = [
    '| data | operation | ours (s) | ceiling | ceiling (s) | ceiling rate (data directory bytes) | ours, % of the ceiling | goal |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const d of all) {
    for (const r of d.rows) {
      lines.push(
        `| ${d.mib} MiB | ${r.op} | ${fmt(r.ours)} | ${r.ceiling} | ${fmt(r.ceilingSecs)} | ${fmt(r.rate, 0)} MB/s | ${fmt(r.pct, 0)}% | ≥ ${r.goal}%: ${met(r.pct >= r.goal)} |`,
      );
    }
    lines.push(
      `| ${d.mib} MiB | restore, directory, against \`copy_file_range\` of the backup's data files, each fsynced (reflink: ${d.cfr.reflink}) | ${fmt(d.cfr.ours)} | \`copy_file_range\` | ${fmt(d.cfr.secs)} | ${fmt(d.dataBytes / d.cfr.secs / MB, 0)} MB/s | ${fmt((100 * d.cfr.secs) / d.cfr.ours, 0)}% | measured only |`,
    );
  }
  lines.push('', `| CLI start-up: process start to exit (median of ${start.n}) | ms | goal |`, '|---|---|---|');
  for (const [what, secs, goal] of start.rows) {
    lines.push(`| ${what} | ${fmt(secs * 1000, 0)} | ${goal ? `≤ ${goal * 1000} ms: ${met(secs <= goal)}` : ''} |`);
  }
  lines.push(
    '',
    '| data | delta restore onto a plain restore of the older backup (1% of heap pages differ) | plain restore (s) | delta (s) | delta / plain time | goal ≤ 0.5 | bytes written (`wchar`): plain, delta | delta / plain | goal ≤ 2% | page-cache bytes dirtied (`write_bytes`): plain, delta | delta / plain | the device wrote, during the run and a `sync` (whole machine): plain, delta | delta / plain | its summary: heap pages rewritten of compared, files rewritten of compared |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  const mb = (n) => `${fmt(n / MB, 1)} MB`;
  for (const d of all) {
    for (const x of d.deltas) {
      const t = x.delta.secs / x.plain.secs;
      const c = x.delta.wchar / x.plain.wchar;
      const w = x.delta.write / x.plain.write;
      const m = x.summary;
      lines.push(
        `| ${d.mib} MiB | ${x.source} | ${fmt(x.plain.secs)} | ${fmt(x.delta.secs)} | ${fmt(t)} | ${met(t <= 0.5)} | ${mb(x.plain.wchar)}, ${mb(x.delta.wchar)} | ${fmt(100 * c, 2)}% | ${met(c <= 0.02)} | ${mb(x.plain.write)}, ${mb(x.delta.write)} | ${fmt(100 * w, 2)}% | ${mb(x.plain.device)}, ${mb(x.delta.device)} | ${fmt((100 * x.delta.device) / x.plain.device, 2)}% | ${m.pagesRewritten} of ${m.pagesCompared}, ${m.filesRewritten} of ${m.filesCompared} |`,
      );
    }
  }
  return lines.join('\n');
}

function table(all) {
  const lines = [
    '| data | operation | ours, CLI (s) | reference (s) | ours / reference | ours in-process (s) | ours MB/s (in-process) | % of read ceiling | ours peak RSS (MiB) | reference peak RSS (MiB) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    for (const r of s.results) {
      const rate = r.bytes / r.apiSecs / MB;
      lines.push(
        `| ${r.mib} MiB | ${r.label} | ${fmt(r.ours.secs)} | ${fmt(r.theirs.secs)} | ${fmt(r.ours.secs / r.theirs.secs)} | ${fmt(r.apiSecs)} | ${fmt(rate, 0)} | ${fmt((100 * rate) / s.ceiling.read, 0)}% | ${fmt(r.ours.rss / 1024, 1)} | ${fmt(r.theirs.rss / 1024, 1)} |`,
      );
    }
  }
  lines.push(
    '',
    '| data | read ceiling: `cat` to /dev/null | read ceiling: 1 MiB `read()` | BLAKE3, 1 core | BLAKE3, all cores | JS timer (10 ms) latest during a full backup |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    const c = s.ceiling;
    lines.push(
      `| ${s.mib} MiB | ${fmt(c.cat, 0)} MB/s | ${fmt(c.read, 0)} MB/s | ${fmt(c.hash1, 0)} MB/s | ${fmt(c.hashAll, 0)} MB/s | ${fmt(s.lag.maxLateMs, 1)} ms late |`,
    );
  }
  lines.push(
    '',
    '| data | heap bytes | content maps per backup | maps / heap | increment at 1%: bytes stored | of which content maps |',
    '|---|---|---|---|---|---|',
  );
  for (const s of all) {
    const m = s.maps;
    lines.push(
      `| ${s.mib} MiB | ${fmt(m.heapBytes / MB, 1)} MB | ${fmt(m.mapBytes / MB, 2)} MB | ${fmt((100 * m.mapBytes) / m.heapBytes, 2)}% | ${fmt(m.incBytes / MB, 1)} MB | ${fmt(m.incMapBytes / MB, 2)} MB |`,
    );
  }
  return lines.join('\n');
}

const part = (name) => opts.part === 'all' || opts.part === name;
const machine = `${cpus().length} cores, ${cpus()[0]?.model.trim()}, Node ${process.version}`;
const day = new Date().toISOString().slice(0, 10);
const command = `\`node scripts/bench.mjs --sizes ${sizes.join(',')} --runs ${runs} --part <part>\``;
const reports = {};
if (part('core')) {
  reports.bench = `Measured ${day} on ${machine} with ${command.replace('<part>', 'core')} (medians of ${runs} alternating runs, warm page cache, engine powdb-storage 0.29.0). "ours / reference" compares whole processes (CLI against the reference's Rust binary, each including its start-up: Node's is ~0.15 s); "in-process" times our API call alone, and "% of read ceiling" compares that with reading the same bytes with 1 MiB \`read()\` calls.\n\n${table(sizes.map(benchSize))}`;
}
if (part('repo')) {
  reports['bench-repo'] =
    `Measured ${day} on ${machine} with ${command.replace('<part>', 'repo')} (medians of ${runs} runs, each after a \`sync\`, the plain and repository runs alternating; the CLI, each run including Node's start-up and, encrypted, the argon2id key derivation; peak RSS of the whole process):\n\n${repoTable(sizes.map(benchRepo))}`;
}
if (part('s3')) {
  const started = performance.now();
  const all = await benchS3All();
  const took = (performance.now() - started) / 1000;
  if (opts.smoke) console.error(`s3: the smoke run took ${fmt(took, 1)} s, restores byte-identical`);
  reports['bench-s3'] =
    `Measured ${day} on ${machine} with ${command.replace('<part>', 's3')} against SeaweedFS ${SEAWEED_VERSION} (\`weed mini\`, started by the benchmark on 127.0.0.1, on the same disk and cores) and rclone ${RCLONE_VERSION} (medians of ${runs} runs, each after a \`sync\` and into or from fresh prefixes, ours and rclone's alternating; the CLI, each run including Node's start-up; peak RSS of the whole process):\n\n${s3Table(all)}`;
}
if (part('disk')) {
  const started = performance.now();
  const all = diskSizes.map(benchDisk);
  const start = startup();
  if (opts.smoke)
    console.error(
      `disk: the smoke run took ${fmt((performance.now() - started) / 1000, 1)} s, restores byte-identical`,
    );
  const how = `\`node scripts/bench.mjs --sizes ${diskSizes.join(',')} --runs ${runs} --part disk\``;
  const big = diskSizes.filter((mib) => diskPad(mib) !== undefined);
  const padded = big.length
    ? `; at ${big.join(', ')} MiB each row carries ${DISK_PAD} bytes of padding, so that the engine can open the database to change it`
    : '';
  reports['bench-disk'] =
    `Measured ${day} on ${machine}, ${fsInfo()}, with ${how} (medians of ${runs} runs, ours and the ceiling alternating, each after a \`sync\` and a ${PAUSE_MS / 1000} s pause, warm page cache; ours is the CLI, each run including Node's start-up${padded}):\n\n${diskTable(all, start)}`;
}
for (const text of Object.values(reports)) console.log(`${text}\n`);
if (opts.smoke) console.log('bench smoke: completed; the chain restore was opened by the engine with every row');
if (opts.readme) {
  const readme = join(root, 'docs', 'benchmarks.md');
  let text = readFileSync(readme, 'utf8');
  for (const [name, report] of Object.entries(reports)) {
    text = text.replace(
      new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`),
      `<!-- ${name}:start -->\n${report}\n<!-- ${name}:end -->`,
    );
  }
  writeFileSync(readme, text);
}
