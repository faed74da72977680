// --part repo: format-2 repositories. Full backup and restore for each kind
// (zstd, none, zstd + encryption) against our plain directory backup and
// restore, runs alternating, and what an increment after inserting 1% more
// rows into the indexed table stores.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bytesOf,
  copyOf,
  fresh,
  grow,
  measure,
  ours,
  pristine,
  run,
  runOurs,
  scratch,
  summary,
  theirs,
  warm,
} from './kit.mjs';

/** One timed run of `argv` after `prepare()` and a `sync` (fsync-bound timings are bimodal otherwise). */
function sample(argv, prepare) {
  prepare();
  run('sync', []);
  return measure(argv);
}

const backupsOf = (repo) => JSON.parse(runOurs('info', '--repo', repo, '--json')).backups;

/** `runs` full backups, then `runs` restores, of the plain directory and of each kind of repository. */
function fullRuns({ at, data, plainBase, runs }) {
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
  return {
    plain: { backup: summary(plain.backups), restore: summary(plain.restores) },
    repos: kinds.map((k) => ({
      kind: k.kind,
      repo: k.repo,
      backup: summary(k.backups),
      restore: summary(k.restores),
      stored: backupsOf(k.repo)[0].stored_bytes,
    })),
  };
}

/**
 * After +1% rows (heap pages at the end, and an index that shifts), each
 * increment once, timed (warm cache; the repository ones after their full
 * backup): the reference's, our plain one and the first two repositories'.
 */
function increments({ at, data, plainBase }, repos) {
  const timedOnce = (argv) => sample(argv, () => warm(data));
  const plainTimed = timedOnce(ours('backup', data, at('plain-inc'), '--base', plainBase));
  const plainInc = JSON.parse(readFileSync(join(at('plain-inc'), 'increment.json'), 'utf8'));
  const changedPages = plainInc.changed.reduce((n, c) => n + (c.Pages ? c.Pages.page_indices.length : 0), 0);
  const refTimed = timedOnce(theirs('incr', data, at('ref-inc'), '--base', plainBase));
  return {
    changedPages,
    increments: [
      { who: 'reference crate, incremental', bytes: bytesOf(at('ref-inc')), ...refTimed },
      { who: 'ours, plain incremental (reference format)', bytes: bytesOf(at('plain-inc')), ...plainTimed },
      ...repos.slice(0, 2).map((r) => {
        const t = timedOnce(ours('backup', data, '--repo', r.repo));
        const newest = backupsOf(r.repo).at(-1);
        return { who: `ours, repository, compression ${r.kind}`, bytes: Number(newest.stored_bytes), ...t };
      }),
    ],
  };
}

export function benchRepo(mib, runs) {
  const db = pristine(mib);
  const { dir, at } = scratch(`repo-${mib}`);
  process.env.POWDB_BACKUP_PASSWORD ??= 'bench password';
  const data = copyOf(db.dir, at('data'));
  const c = { at, data, plainBase: at('plain-base'), runs };
  const dataBytes = bytesOf(data);
  const { plain, repos } = fullRuns(c);
  const skipped = grow(data, db);
  const incs = skipped ? { changedPages: 0, increments: [], skipped } : increments(c, repos);
  fresh(dir);
  return { mib, dataBytes, plain, repos, ...incs };
}
