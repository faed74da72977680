// --part disk: ours as a percentage of what this machine can do at all,
// measured in the same run on the same bytes: `cp -r` of the data directory
// plus `sync` for full backups and restores, reading plus hashing every file
// for incrementals and verify (sides alternating: alternate.mjs); then the CLI's
// start-up and what a delta restore writes against a plain one.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { alternate, cpSyncSide, diskPy, readHashSide, warmTree } from './alternate.mjs';
import {
  MB,
  bytesOf,
  checkRows,
  copyOf,
  every,
  files,
  fixture,
  fresh,
  grow,
  med,
  median,
  ours,
  padFor,
  pristine,
  ROW_PAD,
  run,
  runOurs,
  sameNames,
  scratch,
  script,
  warm,
  work,
} from './kit.mjs';

const CP = '`cp -r` + `sync`';
const RH = 'read + BLAKE3';

/** Throws unless `got` holds the files of `want` (but `wal.log`, which a restore leaves out), byte-identical. */
function sameFiles(want, got, who) {
  for (const name of sameNames(want, got, who, true)) run('cmp', [join(want, name), join(got, name)]);
}

/** Adds the row of `op`: ours (samples.ours) as a percentage of the ceiling (samples.ceiling). */
function addRow(c, op, samples, ceiling, goal) {
  const ours = med(samples.ours);
  const secs = med(samples.ceiling);
  c.rows.push({ op, ours, ceiling, ceilingSecs: secs, rate: c.dataBytes / secs / MB, pct: (100 * secs) / ours, goal });
}
/** Our `side` (and any `more` sides) against `cp -r` + `sync` of the data directory; returns the samples. */
function againstCopy(c, op, side, ...more) {
  const samples = alternate([{ name: 'ours', ...side }, cpSyncSide(c.data, c.cpOut), ...more], c);
  addRow(c, op, samples, CP, 85);
  return samples;
}
/** Our `side` against reading and hashing `fileList` (`of`: what they are), warmed by `warmUp`. */
function againstHash(c, op, side, fileList, warmUp, of) {
  addRow(c, op, alternate([{ name: 'ours', ...side }, readHashSide(fileList, warmUp)], c), `${RH} of ${of}`, 90);
}

/** Full backups: a directory, and a format-2 repository (default: zstd) and one without compression. */
function fullBackups(c) {
  const { at, data } = c;
  const dest = at('backup');
  const repo = at('repo');
  const into = (...flags) => ({
    argv: ours('backup', data, '--repo', repo),
    prepare: () => (fresh(repo), runOurs('init', repo, ...flags), warm(data)),
  });
  const prepare = () => (fresh(dest), warm(data));
  againstCopy(c, 'full backup, directory', { argv: ours('backup', data, dest), prepare });
  againstCopy(c, 'full backup, repository (zstd)', into());
  // Without compression: what the rest of the data path costs (zstd level 1 runs at 300-530 MB/s per core here).
  againstCopy(c, 'full backup, repository (no compression)', into('--compression', 'none'));
  [dest, c.cpOut, repo].forEach(fresh);
}

/** The backups the rest reads (untimed): a directory, a repository (zstd) and one without compression. */
function templates({ at, data }) {
  const base = at('base');
  runOurs('backup', data, base);
  const tmpl = at('repo-full');
  runOurs('init', tmpl);
  runOurs('backup', data, '--repo', tmpl);
  const tmplNone = at('repo-none');
  runOurs('init', tmplNone, '--compression', 'none');
  runOurs('backup', data, '--repo', tmplNone);
  return { base, tmpl, tmplNone };
}

/** Restores; the directory one also against copy_file_range(2) of the backup's data files, which it returns. */
function restores(c, { base, tmpl, tmplNone }) {
  const { at, data, out } = c;
  const cfrOut = at('cfr');
  const restoredNames = readdirSync(data).filter((n) => n !== 'wal.log');
  const s = againstCopy(
    c,
    'restore, directory',
    {
      argv: ours('restore', base, out),
      prepare: () => (fresh(out), warm(base)),
      check: () => sameFiles(data, out, 'restore from a directory'),
    },
    {
      name: 'cfr',
      argv: ['python3', script('disk.py'), 'cfr', cfrOut, ...restoredNames.map((n) => join(base, n))],
      prepare: () => (fresh(cfrOut), warm(base)),
      check: () => sameFiles(data, cfrOut, 'copy_file_range'),
    },
  );
  fresh(cfrOut);
  for (const [kind, repo, which] of [
    ['zstd', tmpl, 'a repository'],
    ['no compression', tmplNone, 'an uncompressed repository'],
  ]) {
    againstCopy(c, `restore, repository (${kind})`, {
      argv: ours('restore', '--repo', repo, out),
      prepare: () => (fresh(out), warmTree(repo)),
      check: () => sameFiles(data, out, `restore from ${which}`),
    });
  }
  [out, c.cpOut].forEach(fresh);
  return { ours: med(s.ours), secs: med(s.cfr), reflink: JSON.parse(s.cfr[0].out ?? '{}').reflink };
}

/** A copy of the database with 1% of its heap pages updated. */
function updated(c) {
  const u = copyOf(c.db.dir, c.at('updated'));
  fixture('update', u, '--every', every(c.db, 0.01));
  return u;
}

/** What the incrementals read: a copy with 1% more rows (indexed table), else (see ROW_PAD) 1% of the heap pages updated. */
function changedCopy(c) {
  const grown = copyOf(c.db.dir, c.at('grown'));
  const skipped = grow(grown, c.db);
  if (!skipped) return { changed: grown, how: 'inserting 1% more rows' };
  fresh(grown);
  const how = 'updating 1% of the heap pages (the engine cannot insert at this size)';
  return { changed: updated(c), how, skipped };
}

/** Incrementals of the changed copy, against reading and hashing it. */
function incrementals(c, { base, tmpl }, { changed, how }) {
  const inc = c.at('inc');
  const incRepo = c.at('repo-inc');
  const changedFiles = files(changed);
  const warmChanged = () => warm(changed);
  const directory = { argv: ours('backup', changed, inc, '--base', base), prepare: () => (fresh(inc), warmChanged()) };
  againstHash(c, `incremental after ${how}, directory`, directory, changedFiles, warmChanged, 'the data directory');
  const repository = {
    argv: ours('backup', changed, '--repo', incRepo, '--same-database'), // a changed copy of the database
    prepare: () => (fresh(incRepo), run('cp', ['-a', tmpl, incRepo]), warmChanged()),
  };
  againstHash(c, `incremental after ${how}, repository`, repository, changedFiles, warmChanged, 'the data directory');
  [inc, incRepo].forEach(fresh);
}

/** Verify, against reading and hashing the backup's files (a repository: the data it holds, uncompressed). */
function verifies(c, { base, tmpl, tmplNone }) {
  const side = { argv: ours('verify', base), prepare: () => warm(base) };
  againstHash(c, 'verify, directory', side, files(base), () => warm(base), "the backup's files");
  for (const [kind, repo] of [
    ['zstd', tmpl],
    ['no compression', tmplNone],
  ]) {
    const ofRepo = { argv: ours('verify', '--repo', repo), prepare: () => warmTree(repo) };
    const held = 'the data directory (what the backup holds)';
    againstHash(c, `verify, repository (${kind})`, ofRepo, c.dataFiles, () => warm(c.data), held);
  }
  fresh(tmplNone);
}

/** Plain restore (`argv`) against --delta onto `older`: time, and bytes written and dirtied. */
function deltaOf(c, upd, source, argv, older, warmSource) {
  const { out } = c;
  const s = alternate(
    [
      { name: 'plain', argv: ours(...argv, '--json'), prepare: () => (fresh(out), warmSource()), device: true },
      {
        name: 'delta',
        argv: ours(...argv, '--delta', '--json'),
        device: true,
        prepare: () => (copyOf(older, out), warmSource()),
        check: () => {
          sameFiles(upd, out, `delta restore from a ${source}`);
          if (source !== 'repository') checkRows(out, c.db, 'delta restore');
        },
      },
    ],
    c,
  );
  const of = (k) => ({
    secs: med(s[k]),
    write: med(s[k], 'write_bytes'),
    wchar: med(s[k], 'wchar'),
    device: med(s[k], 'device_bytes'),
  });
  return { source, plain: of('plain'), delta: of('delta'), summary: JSON.parse(s.delta[0].out).delta };
}

/** Delta restore: the newer backup (of `upd`) onto a plain restore of the older, which differs in 1% of its heap pages. */
function deltaRestores(c, { base, tmpl }, upd) {
  const { at, out } = c;
  const incU = at('inc-updated');
  runOurs('backup', upd, incU, '--base', base);
  const old = at('old');
  runOurs('restore', base, old);
  const repoD = at('repo-delta');
  run('cp', ['-a', tmpl, repoD]);
  runOurs('backup', upd, '--repo', repoD, '--same-database'); // a changed copy of the database
  const oldR = at('old-repo');
  runOurs('restore', '--repo', tmpl, oldR);
  const chain = ['restore', base, out, '--apply', incU];
  return [
    deltaOf(c, upd, 'directory chain (full + 1 increment)', chain, old, () => warm(base, incU)),
    deltaOf(c, upd, 'repository', ['restore', '--repo', repoD, out], oldR, () => warmTree(repoD)),
  ];
}

function benchDisk(mib, { runs, pauseMs }) {
  const db = pristine(mib, padFor(mib));
  const { dir, at } = scratch(`disk-${mib}`);
  const data = copyOf(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  const dataFiles = files(data);
  // What every step reads; `rows` collects the table's rows.
  const c = { runs, pauseMs, db, at, data, dataBytes, dataFiles, out: at('out'), cpOut: at('cp'), rows: [] };
  fullBackups(c);
  const backups = templates(c);
  const cfr = restores(c, backups);
  const change = changedCopy(c);
  incrementals(c, backups, change);
  if (!change.skipped) fresh(change.changed);
  verifies(c, backups);
  const deltas = deltaRestores(c, backups, change.skipped ? change.changed : updated(c));
  fresh(dir);
  return { mib, dataBytes, rows: c.rows, cfr, deltas };
}

/** Process start to exit of commands that do no work (median of `n`): an upper bound of the start-up. */
function startup(n) {
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

/** The disk part at each size, then the start-up; with what its report says of the method. */
export function benchDiskAll(sizes, runs, smoke) {
  const pauseMs = smoke ? 100 : 1000;
  const all = sizes.map((mib) => benchDisk(mib, { runs, pauseMs }));
  return {
    all,
    start: startup(smoke ? 3 : 10),
    fs: `${run('findmnt', ['-no', 'FSTYPE', '-T', work])} on Linux ${run('uname', ['-r'])}`,
    pauseMs,
    pad: ROW_PAD,
    padded: sizes.filter((mib) => padFor(mib) !== undefined),
  };
}
