// `npm run bench`: ours against the reference crate `powdb-backup` (0.29.0, on
// the same engine generation), on databases the real engine creates.
//
//   node scripts/bench.mjs [--sizes 64,1024] [--big] [--runs 3] [--part all|core|repo] [--smoke] [--readme]
//
// --big adds 4096 MiB; --part picks the tables (core: against the reference;
// repo: format-2 repositories); --smoke runs 64 MiB once and checks that
// restores are correct, without judging times; --readme rewrites the README's
// tables of the parts that ran.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = join(import.meta.dirname, '..');
const bin = (name) => join(root, 'target', 'release', name);
const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,1024' },
    big: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    smoke: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
  },
});
const sizes = opts.smoke ? [64] : [...opts.sizes.split(',').map(Number), ...(opts.big ? [4096] : [])];
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

/** The pristine database of `mib` MiB, made once by the engine and cached. */
function pristine(mib) {
  const dir = join(work, `db-${mib}`);
  const marker = join(work, `db-${mib}.json`);
  if (!existsSync(marker)) {
    fresh(dir);
    console.error(`creating a ${mib} MiB database with the engine (cached in ${dir})...`);
    writeFileSync(marker, JSON.stringify(fixture('bulk', dir, '--mib', String(mib))));
  }
  return { dir, ...JSON.parse(readFileSync(marker, 'utf8')) };
}

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
for (const text of Object.values(reports)) console.log(`${text}\n`);
if (opts.smoke) console.log('bench smoke: completed; the chain restore was opened by the engine with every row');
if (opts.readme) {
  const readme = join(root, 'README.md');
  let text = readFileSync(readme, 'utf8');
  for (const [name, report] of Object.entries(reports)) {
    text = text.replace(
      new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`),
      `<!-- ${name}:start -->\n${report}\n<!-- ${name}:end -->`,
    );
  }
  writeFileSync(readme, text);
}
