// Crash safety of the format-2 repository (docs/repository-format.md, "Write
// protocol and crash safety"). A backup (an increment that adds several packs)
// and an expire (which deletes snapshots, deletes whole packs and repacks
// sparse ones) run in a child process. That process is SIGKILLed at every
// fault-injection boundary (POWDB_BACKUP_CRASH_AT) and at random moments from
// a seeded PRNG. After each kill:
// - the repository lists the old backups, or the old ones plus the new one whole;
// - every pack that an index lists exists;
// - verify finds no damage;
// - every listed backup restores byte-identical to a plain full backup of its moment.
// Then the next backup succeeds, and the next expire (which alone settles what
// killed writers left) leaves no unindexed pack, no `.tmp-*` file and at most
// one index. Indexes are read
// here with an independent reader of the documented format.
// A few runs kill twice: the second process must first settle what the
// first left (unindexed packs, stale indexes), and is killed in turn.
//
// Seeded by POWDB_FI_SEED, or at random; the seed is printed, and every
// failure message names it with the run that failed.
import { cpSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, type BackupRecord, type InitOptions } from '../index.js';
import {
  afterKill,
  beyond,
  each,
  expectExit,
  expectSameFiles,
  killedAt,
  mulberry32,
  parseIndex,
  randomKills as randomKillsOf,
  runChild as runChildOf,
  unsealerOf,
  type Plan,
  type Run,
  type Unseal,
} from './fault-injection-shared.js';
import { fixture, makeDb, tmp, type Gen } from './helpers.js';

/** The engine generation (the repository code is the same for both; 0.29 only keeps the suite short). */
const GEN: Gen = 'new';
/** Random kills per scenario and mode: two modes make about 12 per scenario. */
const RANDOM_RUNS = 6;
/** A cheap argon2id, as in repository-v2.spec.ts. */
const KDF = { mKib: 64, t: 1, p: 1 };
const PASSWORD = 'correct horse battery staple';
const TIMEOUT = 150_000;

const SEED = process.env.POWDB_FI_SEED ? Number(process.env.POWDB_FI_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
console.log(`fault-injection-v2: seed ${SEED} (rerun with POWDB_FI_SEED=${SEED})`);

// Tests set POWDB_BACKUP_PASSWORD only for the children of the encrypted repository.
delete process.env.POWDB_BACKUP_PASSWORD;

type Mode = 'plain' | 'encrypted';
const MODES: Mode[] = ['plain', 'encrypted'];

/** Compression none in both modes, so that an increment fills several ~8 MiB packs. */
function initOptions(mode: Mode): InitOptions {
  return mode === 'encrypted'
    ? { compression: 'none', encrypt: true, password: PASSWORD, kdf: KDF }
    : { compression: 'none' };
}

const open = (dir: string, mode: Mode) =>
  PackedRepository.open(dir, mode === 'encrypted' ? { password: PASSWORD } : {});

/** Runs `work`; a failure names the seed and the run. */
async function step(label: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof Error) err.message = `[seed ${SEED}] ${label}: ${err.message}`;
    throw err;
  }
}

// ------------------------------------------------------------ the child

/** The child (fault-injection-shared.ts); an encrypted repository's password in its environment. */
const runChild = (args: string[], mode: Mode, plan: Plan): Promise<Run> =>
  runChildOf(args, plan, mode === 'encrypted' ? { POWDB_BACKUP_PASSWORD: PASSWORD } : {});

const randomKills = (rng: () => number, ms: number, runs = RANDOM_RUNS): Plan[] => randomKillsOf(rng, ms, runs);

/** How long the operation takes on a copy of `pristine`: the shorter of `first` and another run (the first may meet a cold cache). */
async function timing(
  pristine: string,
  dir: string,
  mode: Mode,
  args: (dir: string) => string[],
  first: Run,
): Promise<number> {
  const again = await runChild(args(copyOf(pristine, dir)), mode, { label: 'timing' });
  expect(again.code).toBe(0);
  rmSync(dir, { recursive: true });
  return Math.min(first.opMs, again.opMs);
}

/** Kills `args`'s operation at `pre` (it must be reached). */
async function preKill(args: string[], mode: Mode, pre: string): Promise<void> {
  const run = await runChild(args, mode, { label: pre, crashAt: pre });
  expect(run.signal, `${pre} must be reached`).toBe('SIGKILL');
}

// ------------------------------------------- an independent reader

/** How to open the sealed objects of the repository in `dir` (config and key files, as documented). */
function unsealer(dir: string): Unseal {
  const config = readFileSync(join(dir, 'config'), 'utf8');
  const keys =
    JSON.parse(config).encryption === 'none'
      ? []
      : readdirSync(join(dir, 'keys')).map((name) => readFileSync(join(dir, 'keys', name), 'utf8'));
  return unsealerOf(config, keys, PASSWORD);
}

/** Every path under `dir` (relative, `/`-separated), files only. */
function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile()).sort();
}

const objects = (dir: string, prefix: string) =>
  filesUnder(dir).filter((p) => p.startsWith(prefix) && !p.split('/').some((part) => part.startsWith('.')));

interface RepoState {
  /** Index objects. */
  indexes: number;
  /** Packs that an index lists but are absent (never allowed). */
  missing: string[];
  /** Packs that no index lists. */
  unindexed: string[];
  /** `.tmp-*` files anywhere. */
  temps: string[];
  /** Names at the top of the repository directory (but `locks`, which readers create: see `holds`). */
  top: string[];
  /** Holds (`locks/*`) present: none once a writer has finished (it removes dead ones). */
  holds: string[];
}

function repoState(dir: string, unseal: Unseal): RepoState {
  const indexes = objects(dir, 'index/');
  const listed = new Set(indexes.flatMap((key) => parseIndex(unseal(readFileSync(join(dir, key)), key), key)));
  const packs = objects(dir, 'data/');
  return {
    indexes: indexes.length,
    missing: [...listed].filter((p) => !packs.includes(p)),
    unindexed: packs.filter((p) => !listed.has(p)),
    temps: filesUnder(dir).filter((p) => p.split('/').at(-1)!.startsWith('.tmp-')),
    top: readdirSync(dir)
      .filter((n) => n !== 'locks')
      .sort(),
    holds: filesUnder(dir).filter((p) => p.startsWith('locks/')),
  };
}

/** What a writer that finished leaves: no unindexed pack, no temporary file, no LOCK, no hold. */
function expectTidy(state: RepoState, mode: Mode): void {
  expect({ missing: state.missing, unindexed: state.unindexed, temps: state.temps, holds: state.holds }).toEqual({
    missing: [],
    unindexed: [],
    temps: [],
    holds: [],
  });
  const top = ['config', 'data', 'index', 'snapshots', ...(mode === 'encrypted' ? ['keys'] : [])].sort();
  expect(state.top).toEqual(top);
}

// ------------------------------------------------ restores and verify

async function plainNow(data: string): Promise<string> {
  const dir = join(tmp(), 'plain');
  await fullBackup(data, dir);
  return dir;
}

let restores = 0;
/** Backup `id` restores byte-identical to the plain full backup of its moment. */
async function expectRestores(repo: PackedRepository, id: string, plain: string, scratch: string): Promise<void> {
  const dest = join(scratch, `restored-${++restores}`);
  const result = await repo.restore(dest, { asOf: id });
  expect(result.applied).toEqual([id]);
  expectSameFiles(dest, plain);
  rmSync(dest, { recursive: true, force: true });
}

type Verified = Awaited<ReturnType<PackedRepository['verify']>>;

/** No failing report; a report for the repository and for each of `ids`. */
function expectNoDamage(results: Verified, ids: string[]): void {
  expect(results.filter((r) => !r.report.ok)).toEqual([]);
  expect(results.map((r) => r.id)).toEqual(['repository', ...[...ids].sort()]);
}

/** As `expectNoDamage`, and not even a note (such as NOTE_UNINDEXED) among the repository's checks. */
function expectClean(results: Verified, ids: string[]): void {
  expectNoDamage(results, ids);
  expect(results[0]!.report.checks.slice(1)).toEqual([]);
}

const ids = (records: BackupRecord[]) => records.map((r) => r.id);

/** A copy of the repository for one run. */
function copyOf(pristine: string, dir: string): string {
  cpSync(pristine, dir, { recursive: true });
  return dir;
}

// ------------------------------------------------------------ backup

/**
 * A repository with a full backup of a database; then rows were added to
 * the database, so the next backup is an increment of about 20 MiB of new
 * chunks (3 packs with compression none).
 */
async function backupScenario(mode: Mode) {
  const data = makeDb(GEN, 60_000, '--index');
  const root = tmp();
  const pristine = join(root, 'pristine');
  const repo = await PackedRepository.init(pristine, initOptions(mode));
  const old = await repo.backup(data);
  repo.close();
  const plainOld = await plainNow(data);
  fixture(GEN, 'insert', data, '--table', 'T', '--from', 60_000, '--count', 30_000, '--pad', 600);
  const plainNew = await plainNow(data);
  return { data, root, pristine, old, plainOld, plainNew, unseal: unsealer(pristine) };
}

async function backupRun(s: Awaited<ReturnType<typeof backupScenario>>, mode: Mode, plan: Plan, dir: string) {
  if (plan.pre) await preKill(['backup', dir, s.data], mode, plan.pre);
  const run = await runChild(['backup', dir, s.data], mode, plan);
  expectExit(run, plan);
  const killed = run.signal === 'SIGKILL';
  const [point, nth] = (plan.crashAt ?? '').split(':');

  // What the kill left, against the protocol's table.
  const left = repoState(dir, s.unseal);
  expect(left.missing, 'every pack an index lists exists').toEqual([]);
  if (killed && point === 'pack-written') expect(left.unindexed.length).toBeGreaterThanOrEqual(Number(nth));
  // A backup settles nothing (another beside it may be writing those packs): what a first kill left stays unindexed.
  if (killed && ['packs-committed', 'index-written', 'manifest-written'].includes(point!) && !plan.pre) {
    expect(left.unindexed).toEqual([]);
    expect(left.indexes).toBe(2);
  }

  const repo = await open(dir, mode);
  try {
    const listed = ids(await repo.list());
    // The old backup, and the new one whole or not at all.
    expect(listed[0]).toBe(s.old.id);
    const added = listed.slice(1);
    expect(added.length).toBeLessThanOrEqual(1);
    if (!killed || point === 'manifest-written') expect(added).toHaveLength(1);
    else if (plan.crashAt) expect(added).toEqual([]);

    expectNoDamage(await repo.verify(), listed);
    await expectRestores(repo, s.old.id, s.plainOld, s.root);
    if (added[0]) await expectRestores(repo, added[0], s.plainNew, s.root);

    // The next backup succeeds; the next expire (alone in the repository) cleans up what the killed one left.
    const next = await repo.backup(s.data);
    expect(ids(await repo.list())).toEqual([...listed, next.id]);
    await repo.expire({ retainFull: 10 });
    expectTidy(repoState(dir, s.unseal), mode);
    expectClean(await repo.verify(), [...listed, next.id]);
    await expectRestores(repo, next.id, s.plainNew, s.root);
    return { killed, added: added.length };
  } finally {
    repo.close();
  }
}

// ------------------------------------------------------------ expire

/**
 * A repository where `expire({ retainFull: 1 })` must delete two snapshots,
 * delete whole packs and repack sparse ones:
 * - F1: a database sharing nothing with the others (another table, other ids);
 *   its packs become wholly unused;
 * - F2: database x;
 * - F3: x after a score update of every 200th row, which changes about every
 *   other 64 KiB run of the heap, so F2's packs become sparse;
 * - I4: an increment on F3 after rows were added.
 * F3 and I4 are retained.
 */
async function expireScenario(mode: Mode) {
  const root = tmp();
  const pristine = join(root, 'pristine');
  const repo = await PackedRepository.init(pristine, initOptions(mode));
  const plain: Record<string, string> = {};
  const take = async (data: string, type?: 'full') => {
    // Two databases share one source on purpose (chunks only one of them uses; retention counts per source).
    const record = await repo.backup(data, { ...(type ? { type } : {}), source: 'shared', sameDatabase: true });
    plain[record.id] = await plainNow(data);
    return record;
  };
  const y = join(tmp(), 'y');
  fixture(GEN, 'create', y, '--table', 'Y', '--rows', 0, '--index');
  fixture(GEN, 'insert', y, '--table', 'Y', '--from', 1_000_000, '--count', 20_000, '--pad', 600);
  const f1 = await take(y, 'full');
  const x = makeDb(GEN, 30_000, '--index', '--pad', '600');
  const f2 = await take(x, 'full');
  fixture(GEN, 'update', x, '--every', 200);
  const f3 = await take(x, 'full');
  fixture(GEN, 'insert', x, '--table', 'T', '--from', 30_000, '--count', 3000, '--pad', 600);
  const i4 = await take(x);
  expect(i4.parent).toBe(f3.id);
  repo.close();
  return {
    root,
    pristine,
    plain,
    removed: [f1.id, f2.id],
    retained: [f3.id, i4.id],
    indexes: objects(pristine, 'index/').length,
    packs: objects(pristine, 'data/'),
    unseal: unsealer(pristine),
  };
}

interface PruneCounts {
  packsWritten: number;
  packsRemoved: number;
}

async function expireRun(
  s: Awaited<ReturnType<typeof expireScenario>>,
  counts: PruneCounts,
  mode: Mode,
  plan: Plan,
  dir: string,
) {
  if (plan.pre) await preKill(['expire', dir, '1'], mode, plan.pre);
  const run = await runChild(['expire', dir, '1'], mode, plan);
  expectExit(run, plan);
  const killed = run.signal === 'SIGKILL';
  const [point, nth] = (plan.crashAt ?? '').split(':');
  const n = Number(nth);

  // What the kill left, against the protocol's table.
  const left = repoState(dir, s.unseal);
  expect(left.missing, 'every pack an index lists exists').toEqual([]);
  if (killed && !plan.pre) {
    // Until step 4 of the prune every pack is still present (some perhaps no longer indexed).
    const gone = s.packs.filter((p) => !objects(dir, 'data/').includes(p)).length;
    const expected: Partial<Record<string, { indexes: number; unindexed?: number; gone: number }>> = {
      'expire-renamed': { indexes: s.indexes, unindexed: 0, gone: 0 },
      'prune-pack-written': { indexes: s.indexes, gone: 0 },
      'prune-index-written': { indexes: s.indexes + 1, unindexed: 0, gone: 0 },
      'prune-index-removed': { indexes: s.indexes + 1 - n, gone: 0 },
      'prune-pack-removed': { indexes: 1, unindexed: counts.packsRemoved - n, gone: n },
    };
    const want = expected[point!];
    if (want) {
      expect({ indexes: left.indexes, gone }).toEqual({ indexes: want.indexes, gone: want.gone });
      if (want.unindexed !== undefined) expect(left.unindexed).toHaveLength(want.unindexed);
    }
    if (point === 'prune-pack-written') expect(left.unindexed.length).toBeGreaterThanOrEqual(n);
  }

  const repo = await open(dir, mode);
  try {
    const listed = ids(await repo.list());
    // Every retained backup; of the expired ones, the oldest few (removal goes newest first).
    const stillListed = s.removed.filter((id) => listed.includes(id));
    expect(listed).toEqual([...stillListed, ...s.retained]);
    expect(stillListed).toEqual(s.removed.slice(0, stillListed.length));
    if (!killed || point?.startsWith('prune-')) expect(stillListed).toEqual([]);
    if (killed && point === 'expire-renamed') expect(stillListed).toHaveLength(s.removed.length - n);

    expectNoDamage(await repo.verify(), listed);
    for (const id of listed) await expectRestores(repo, id, s.plain[id]!, s.root);

    // The expire again: it completes and leaves the retained backups only, in one index.
    const again = await repo.expire({ retainFull: 1 });
    expect({ removed: again.removed, kept: again.kept }).toEqual({ removed: stillListed, kept: s.retained });
    expect(ids(await repo.list())).toEqual(s.retained);
    const state = repoState(dir, s.unseal);
    expectTidy(state, mode);
    expect(state.indexes).toBeLessThanOrEqual(1);
    expectClean(await repo.verify(), s.retained);
    for (const id of s.retained) await expectRestores(repo, id, s.plain[id]!, s.root);
    return { killed, stillListed: stillListed.length };
  } finally {
    repo.close();
  }
}

// ------------------------------------------------------------- suites

describe.each(MODES)('format-2 repository (%s, compression none) killed at any moment', (mode) => {
  const rngFor = (what: number) => mulberry32(SEED + what * 1000 + MODES.indexOf(mode));

  it(
    `a backup: at every boundary and ${RANDOM_RUNS} random moments`,
    async () => {
      const s = await backupScenario(mode);

      // A clean run on a copy: how long it takes, and how often the counted points are reached.
      const cleanDir = copyOf(s.pristine, join(s.root, 'clean'));
      const before = objects(cleanDir, 'data/');
      const clean = await runChild(['backup', cleanDir, s.data], mode, { label: 'clean' });
      expect(clean.code).toBe(0);
      expect(clean.result.type).toBe('incr');
      const packs = objects(cleanDir, 'data/').filter((p) => !before.includes(p)).length;
      expect(packs, 'the increment must fill at least two packs').toBeGreaterThanOrEqual(2);
      const files: number = clean.result.files;
      rmSync(cleanDir, { recursive: true });
      const ms = await timing(s.pristine, cleanDir, mode, (dir) => ['backup', dir, s.data], clean);

      const plans: Plan[] = [
        killedAt('lock-acquired', 1),
        ...each('file-done', files),
        ...each('pack-written', packs),
        killedAt('packs-committed', 1),
        killedAt('index-written', 1),
        killedAt('manifest-written', 1),
        beyond('file-done', files),
        beyond('pack-written', packs),
        ...randomKills(rngFor(1), ms),
        // A backup that must first settle the packs of a backup killed before its index.
        ...afterKill('pack-written:2', [
          killedAt('lock-acquired', 1),
          killedAt('manifest-written', 1),
          ...randomKills(rngFor(3), ms, 2),
        ]),
      ];
      const seen: string[] = [];
      for (const [i, plan] of plans.entries()) {
        const dir = copyOf(s.pristine, join(s.root, `run${i}`));
        await step(`${mode} backup, ${plan.label}`, async () => {
          const r = await backupRun(s, mode, plan, dir);
          const what = r.killed ? (r.added ? 'killed after its snapshot' : 'killed') : 'finished';
          if (plan.killAfterMs !== undefined) seen.push(plan.pre ? `${what} (2nd kill)` : what);
        });
        rmSync(dir, { recursive: true, force: true });
      }
      console.log(
        `${mode} backup (clean run ${ms.toFixed(0)} ms, ${packs} packs, ${files} files): random runs ${seen.join(', ')}`,
      );
    },
    TIMEOUT,
  );

  it(
    `an expire with prune: at every boundary and ${RANDOM_RUNS} random moments`,
    async () => {
      const s = await expireScenario(mode);

      // A clean run on a copy: every point must be reachable (snapshots deleted, packs
      // repacked and deleted whole), and how often each is reached.
      const cleanDir = copyOf(s.pristine, join(s.root, 'clean'));
      const before = objects(cleanDir, 'data/');
      const clean = await runChild(['expire', cleanDir, '1'], mode, { label: 'clean' });
      expect(clean.code).toBe(0);
      const after = objects(cleanDir, 'data/');
      const counts: PruneCounts = {
        packsWritten: after.filter((p) => !before.includes(p)).length,
        packsRemoved: before.filter((p) => !after.includes(p)).length,
      };
      const pruned = clean.result.pruned;
      expect({ removed: clean.result.removed, kept: clean.result.kept }).toEqual({
        removed: s.removed,
        kept: s.retained,
      });
      expect(pruned.packsRepacked, 'a sparse pack is repacked').toBeGreaterThanOrEqual(1);
      expect(pruned.packsRemoved - pruned.packsRepacked, 'a wholly unused pack is deleted').toBeGreaterThanOrEqual(1);
      expect(pruned.packsRemoved).toBe(counts.packsRemoved);
      expect(counts.packsWritten).toBeGreaterThanOrEqual(1);
      expect(s.indexes).toBeGreaterThanOrEqual(2);
      rmSync(cleanDir, { recursive: true });
      const ms = await timing(s.pristine, cleanDir, mode, (dir) => ['expire', dir, '1'], clean);

      const plans: Plan[] = [
        ...each('expire-renamed', s.removed.length),
        ...each('prune-pack-written', counts.packsWritten),
        killedAt('prune-index-written', 1),
        ...each('prune-index-removed', s.indexes),
        ...each('prune-pack-removed', counts.packsRemoved),
        beyond('expire-renamed', s.removed.length),
        beyond('prune-pack-written', counts.packsWritten),
        beyond('prune-index-written', 1),
        beyond('prune-index-removed', s.indexes),
        beyond('prune-pack-removed', counts.packsRemoved),
        ...randomKills(rngFor(2), ms),
        // An expire that must first settle what a killed prune left: its new packs
        // unindexed (killed in step 1), or old packs no longer listed (killed in step 4).
        ...afterKill('prune-pack-written:1', [killedAt('prune-index-written', 1), ...randomKills(rngFor(4), ms, 2)]),
        ...afterKill('prune-pack-removed:1', [killedAt('prune-index-written', 1), ...randomKills(rngFor(5), ms, 2)]),
      ];
      const seen: string[] = [];
      for (const [i, plan] of plans.entries()) {
        const dir = copyOf(s.pristine, join(s.root, `run${i}`));
        await step(`${mode} expire, ${plan.label}`, async () => {
          const r = await expireRun(s, counts, mode, plan, dir);
          const what = r.killed ? `killed (${r.stillListed} expired listed)` : 'finished';
          if (plan.killAfterMs !== undefined) seen.push(plan.pre ? `${what} (2nd kill)` : what);
        });
        rmSync(dir, { recursive: true, force: true });
      }
      console.log(
        `${mode} expire (clean run ${ms.toFixed(0)} ms; ${s.indexes} indexes, ${counts.packsWritten} packs written, ` +
          `${pruned.packsRepacked} repacked, ${counts.packsRemoved} removed): random runs ${seen.join(', ')}`,
      );
    },
    TIMEOUT,
  );
});
