// Crash safety and damage detection of a format-2 repository on object
// storage (docs/repository-format.md: "Object storage", "Writer lock on
// object storage", "Write protocol and crash safety", "Verify"), on every S3
// server of the run (SeaweedFS and versitygw, started by global-setup.ts).
//
// 1. A backup (an increment that fills several ~8 MiB packs, compression
//    none) and an expire with prune run in a child process
//    (../crash-child-v2.mjs) against an s3:// repository. The child is
//    SIGKILLed at every fault-injection point the operation passes
//    (POWDB_BACKUP_CRASH_AT) and at seeded random moments. After each kill:
//    - every pack that an index lists exists, and every pack that none lists
//      is whole: a PUT cut short by the kill never shows (read here with an
//      independent reader of the documented pack, index and seal formats);
//    - the repository lists the old backups, or the old ones plus the new one
//      whole: nothing half-visible;
//    - the LOCK a dead expire left (if it got that far) names it and this
//      machine, with its lease still running, and the next expire takes it
//      over at once (its PID is dead here) rather than 5 minutes later; a dead
//      backup leaves its hold instead, which stops nobody;
//    - verify finds no damage and every listed backup restores byte-identical
//      to a plain full backup of its moment;
//    - the next backup succeeds, and the next expire leaves no unindexed pack,
//      no LOCK and no other stray object, and verify has not even a note.
//    Seeded by POWDB_FI_SEED, or at random; the seed is printed, and every
//    failure message names it with the run that failed.
// 2. A flipped byte in each kind of object (a pack, an index, a snapshot, the
//    config, a key file), written with raw GET + PUT: verify names the damage
//    and restore refuses with the code the local suite (repository-v2.spec.ts)
//    expects for it; what the damage does not touch still restores.
//
// The repository of each run is a copy (raw PUTs under a new prefix) of a
// pristine one made once per target. The kills use a plain repository
// (fault-injection-v2.spec.ts covers encryption on a local directory); the
// damage tests use a plain and an encrypted one.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, type BackupRecord } from '../../index.js';
import { s3Request } from '../../scripts/s3/servers.mjs';
import {
  afterKill,
  expectExit,
  expectSameFiles,
  killedAt,
  mulberry32,
  parseIndex,
  randomKills,
  runChild,
  unsealerOf,
  type Plan,
  type Run,
  type Unseal,
} from '../fault-injection-shared.js';
import { fixture, rejectsWith, type Gen, warningsOf } from '../helpers.js';
import { deletePrefix, envFor, freshPrefix, listKeys, parseS3Url, s3Targets, type S3Target } from './targets.js';

/** The engine generation (the repository code is the same for both). */
const GEN: Gen = 'new';
/** Random kills per scenario and target (plus one after a first kill). */
const RANDOM_RUNS = 4;
/** A cheap argon2id (the encrypted repository of the damage tests). */
const KDF = { mKib: 64, t: 1, p: 1 };
const PASSWORD = 'object storage password';
const TIMEOUT = 180_000;

const SEED = process.env.POWDB_FI_SEED ? Number(process.env.POWDB_FI_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
console.log(`fault-injection-s3: seed ${SEED} (rerun with POWDB_FI_SEED=${SEED})`);

const targets = s3Targets();

// The API reads POWDB_BACKUP_PASSWORD and the AWS environment: tests set them only where they mean to.
delete process.env.POWDB_BACKUP_PASSWORD;
const saved = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('AWS_')));
/** Points this process's API calls at `t` (one target at a time: the tests of a target run together). */
function useTarget(t: S3Target): void {
  for (const k of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_ENDPOINT', 'AWS_DEFAULT_REGION']) delete process.env[k];
  Object.assign(process.env, envFor(t));
}
function restoreEnv(): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, saved);
}

// Scratch directories of this file, removed at its end (helpers.ts's tmp() removes
// its own after each test, which concurrent tests cannot share).
const scratchDirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'powdb-backup-fi-s3-'));
  scratchDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A data dir with table T holding ids 0..rows (as helpers.ts's makeDb, in a scratch dir of this file). */
function makeDb(rows: number, ...extra: string[]): string {
  const dir = join(scratch(), 'data');
  fixture(GEN, 'create', dir, '--rows', rows, ...extra);
  return dir;
}

/** Runs `work`; a failure names the seed and the run. */
async function step(label: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (err instanceof Error) err.message = `[seed ${SEED}] ${label}: ${err.message}`;
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (records: BackupRecord[]) => records.map((r) => r.id);

// ------------------------------------------------------ raw object access

/** The keys of the repository at `url`, relative to it (`config`, `data/3f/3fa…`, `LOCK`), sorted. */
async function keysOf(t: S3Target, url: string): Promise<string[]> {
  const { prefix } = parseS3Url(url);
  const keys = await listKeys(t, `${url}/`);
  for (const key of keys) expect(key.startsWith(`${prefix}/`), key).toBe(true);
  return keys.map((key) => key.slice(prefix.length + 1)).sort();
}

async function getObject(t: S3Target, url: string, rel: string): Promise<Buffer> {
  const { bucket, prefix } = parseS3Url(url);
  const r = await s3Request(t, 'GET', { bucket, key: `${prefix}/${rel}` });
  if (r.status !== 200) throw new Error(`GET ${url}/${rel}: ${r.status} ${r.body}`);
  return r.body;
}

/** An unconditional PUT: replaces the object if it exists. */
async function putObject(t: S3Target, url: string, rel: string, body: Buffer | string): Promise<void> {
  const { bucket, prefix } = parseS3Url(url);
  const r = await s3Request(t, 'PUT', { bucket, key: `${prefix}/${rel}`, body });
  if (r.status !== 200) throw new Error(`PUT ${url}/${rel}: ${r.status} ${r.body}`);
}

/** Every object of the repository at `url`, by relative key. */
async function readObjects(t: S3Target, url: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const rel of await keysOf(t, url)) out.set(rel, await getObject(t, url, rel));
  return out;
}

/** A copy of `objects` under a fresh prefix: a repository for one run. */
async function plant(t: S3Target, objects: Map<string, Buffer>, label: string): Promise<string> {
  const url = freshPrefix(t, label);
  await Promise.all([...objects].map(([rel, body]) => putObject(t, url, rel, body)));
  expect(await keysOf(t, url)).toEqual([...objects.keys()].sort());
  return url;
}

/**
 * A request the killed child had wholly sent may still complete on the
 * server a moment after it died (a PUT appears, a DELETE lands). Wait until
 * two listings 200 ms apart agree, so that what the checks read is what the
 * next writer finds.
 */
async function quiesce(t: S3Target, url: string): Promise<void> {
  let last = (await keysOf(t, url)).join('\n');
  for (let i = 0; i < 40; i++) {
    await sleep(200);
    const now = (await keysOf(t, url)).join('\n');
    if (now === last) return;
    last = now;
  }
  throw new Error(`the objects under ${url} kept changing after the writer died`);
}

// ------------------------------------------- the state, read independently

interface Lease {
  owner: string;
  host: string;
  machine: string;
  pid: number;
  expires_unix_secs: number;
}

interface RepoState {
  indexes: string[];
  packs: string[];
  /** Packs that an index lists but are absent (never allowed). */
  missing: string[];
  /** Packs that no index lists. */
  unindexed: string[];
  /** The first part of every key: `config`, `data`, `index`, `snapshots`, perhaps `LOCK`. */
  top: string[];
  lock?: Lease;
  /** Holds (`locks/...`): a backup's, an expire's. */
  holds: string[];
}

async function repoState(t: S3Target, url: string, unseal: Unseal): Promise<RepoState> {
  const keys = await keysOf(t, url);
  const indexes = keys.filter((k) => k.startsWith('index/'));
  const packs = keys.filter((k) => k.startsWith('data/'));
  const listed = new Set<string>();
  for (const key of indexes) for (const p of parseIndex(unseal(await getObject(t, url, key), key), key)) listed.add(p);
  return {
    indexes,
    packs,
    missing: [...listed].filter((p) => !packs.includes(p)),
    unindexed: packs.filter((p) => !listed.has(p)),
    top: [...new Set(keys.map((k) => k.split('/')[0]!))].sort(),
    lock: keys.includes('LOCK') ? JSON.parse((await getObject(t, url, 'LOCK')).toString('utf8')) : undefined,
    holds: keys.filter((k) => k.startsWith('locks/')),
  };
}

/**
 * Each of `packs` (those no index lists: verify reads the others) is whole:
 * its trailer is there and its header opens under the pack's key.
 */
async function expectWholePacks(t: S3Target, url: string, packs: string[], unseal: Unseal): Promise<void> {
  for (const key of packs) {
    const pack = await getObject(t, url, key);
    const magic = pack.subarray(pack.length - 8).toString('latin1');
    expect(['PWBPACK2', 'PWBPACK3'], key).toContain(magic);
    const headerLen = pack.readUInt32LE(pack.length - 12);
    expect(headerLen + 12, key).toBeLessThanOrEqual(pack.length);
    const header = unseal(pack.subarray(pack.length - 12 - headerLen, pack.length - 12), key);
    expect(header.length % (magic === 'PWBPACK2' ? 46 : 54), key).toBe(0);
  }
}

/** What a writer that finished leaves: no unindexed pack, no LOCK, nothing but the repository's objects. */
function expectTidy(state: RepoState): void {
  expect({ missing: state.missing, unindexed: state.unindexed, top: state.top }).toEqual({
    missing: [],
    unindexed: [],
    top: ['config', 'data', 'index', 'snapshots'],
  });
}

/**
 * The LOCK a killed writer left names it and the machine its PID belongs to,
 * and holds a lease still running: only its dead PID lets the next writer in.
 */
function expectDeadWritersLock(lock: Lease, run: Run): void {
  expect({
    pid: lock.pid,
    machine: lock.machine.length > 0,
    running: lock.expires_unix_secs > Date.now() / 1000,
  }).toEqual({
    pid: run.pid,
    machine: true,
    running: true,
  });
}

/** Runs `work`, returning the warnings about the repository at `url` the process emitted meanwhile. */
// ------------------------------------------------------ restores and verify

async function plainNow(data: string): Promise<string> {
  const dir = join(scratch(), 'plain');
  await fullBackup(data, dir);
  return dir;
}

/** Backup `id` restores byte-identical to the plain full backup of its moment. */
async function expectRestores(repo: PackedRepository, id: string, plain: string): Promise<void> {
  const dest = join(scratch(), 'restored');
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

// ------------------------------------------------------------- the child

const childArgs = (op: 'backup' | 'expire', url: string, arg: string) => [op, url, arg];

/**
 * Kills the operation at `pre` (it must be reached), leaving its LOCK (an
 * expire) or its hold (a backup); the process id of the killed writer.
 */
async function preKill(t: S3Target, url: string, args: string[], pre: string): Promise<number> {
  const run = await runChild(args, { label: pre, crashAt: pre }, envFor(t));
  expect(run.signal, `${pre} must be reached`).toBe('SIGKILL');
  await quiesce(t, url);
  if (args[0] === 'backup') {
    expect((await keysOf(t, url)).filter((k) => k.startsWith('locks/'))).toHaveLength(1);
    return run.pid;
  }
  const lock = JSON.parse((await getObject(t, url, 'LOCK')).toString('utf8')) as Lease;
  expectDeadWritersLock(lock, run);
  return run.pid;
}

/**
 * Not a crash point: as `pre`, a backup that ran to the end, whose index and
 * snapshot are then deleted. That is what a backup killed after its packs
 * were uploaded and before its index leaves (packs upload in the background,
 * so no crash point stops it exactly there).
 */
const PACKS_UPLOADED = 'packs-uploaded';

async function packsUploaded(t: S3Target, url: string, args: string[]): Promise<void> {
  const before = await keysOf(t, url);
  const run = await runChild(args, { label: PACKS_UPLOADED }, envFor(t));
  expect(run.code).toBe(0);
  const added = (await keysOf(t, url)).filter((k) => !before.includes(k));
  const { bucket, prefix } = parseS3Url(url);
  const drop = added.filter((k) => k.startsWith('index/') || k.startsWith('snapshots/'));
  expect(drop).toHaveLength(2);
  for (const key of drop) {
    expect([200, 204]).toContain((await s3Request(t, 'DELETE', { bucket, key: `${prefix}/${key}` })).status);
  }
  expect(added.filter((k) => k.startsWith('data/')).length, 'packs left unindexed').toBeGreaterThanOrEqual(2);
}

/** Runs the child as `plan` says and waits for the server to settle; the child's run and how it ended. */
async function killRun(t: S3Target, url: string, args: string[], plan: Plan) {
  let prePid: number | undefined;
  if (plan.pre === PACKS_UPLOADED) await packsUploaded(t, url, args);
  else if (plan.pre) prePid = await preKill(t, url, args, plan.pre);
  const run = await runChild(args, plan, envFor(t));
  expectExit(run, plan);
  await quiesce(t, url);
  const killed = run.signal === 'SIGKILL';
  const [point, nth] = plan.crashAt?.split(':') ?? [];
  return { run, prePid, killed, point: killed ? point : undefined, n: Number(nth) };
}

/**
 * After a kill: the dead writer's LOCK, if it took one. Every crash point
 * lies after the lock is taken; an operation that finished leaves none. True
 * when the next writer must take a LOCK over.
 */
function lockAfterKill(k: Awaited<ReturnType<typeof killRun>>, lock: Lease | undefined): boolean {
  if (!k.killed) expect(lock, 'a writer that finished releases its LOCK').toBeUndefined();
  if (k.point) expect(lock, 'a writer killed at a crash point holds its LOCK').toBeDefined();
  if (!lock) return false;
  if (k.prePid !== undefined && lock.pid === k.prePid) {
    // Killed before it took over the first killed writer's lock (left by preKill): still there.
    expect(k.point, 'every crash point lies after the lock is taken').toBeUndefined();
    return true;
  }
  expectDeadWritersLock(lock, k.run);
  return true;
}

/** The next writer takes over a dead writer's LOCK at once, with a warning, and only then. */
function expectTakeover(warnings: string[], left: boolean): void {
  const takeovers = warnings.filter((w) => /took over the lock .* its process is gone\)/.test(w));
  expect(takeovers).toHaveLength(left ? 1 : 0);
}

// ------------------------------------------------------------------ backup

/**
 * A pristine repository with a full backup of a small database; then rows
 * were added, so the next backup is an increment of about 17 MiB of new
 * chunks (3 packs with compression none).
 */
async function backupScenario(t: S3Target) {
  const data = makeDb(2000, '--index');
  const url = freshPrefix(t, 'fi-backup-pristine');
  const repo = await PackedRepository.init(url, { compression: 'none' });
  const old = await repo.backup(data);
  repo.close();
  const plainOld = await plainNow(data);
  fixture(GEN, 'insert', data, '--table', 'T', '--from', 2000, '--count', 25_000, '--pad', 600);
  const plainNew = await plainNow(data);
  const objects = await readObjects(t, url);
  await deletePrefix(t, `${url}/`);
  const unseal = unsealerOf(objects.get('config')!.toString('utf8'), [], PASSWORD);
  const packs = [...objects.keys()].filter((k) => k.startsWith('data/'));
  expect([...objects.keys()].filter((k) => k.startsWith('index/'))).toHaveLength(1);
  return { data, objects, old, plainOld, plainNew, unseal, packs };
}

async function backupRun(t: S3Target, s: Awaited<ReturnType<typeof backupScenario>>, plan: Plan, url: string) {
  const k = await killRun(t, url, childArgs('backup', url, s.data), plan);

  // What the kill left, against the protocol's table.
  const left = await repoState(t, url, s.unseal);
  expect(left.missing, 'every pack an index lists exists').toEqual([]);
  await expectWholePacks(t, url, left.unindexed, s.unseal);
  const newPacks = left.packs.filter((p) => !s.packs.includes(p));
  // Packs upload in the background: a kill right after one is handed over may leave it unwritten.
  if (k.point === 'pack-written') expect(left.unindexed.length).toBeLessThanOrEqual(k.n);
  // A backup settles nothing (another beside it may be writing those packs): what a first kill left stays unindexed.
  if (k.point === 'lock-acquired' && !plan.pre) expect(left.unindexed).toEqual([]);
  if (['lock-acquired', 'file-done', 'pack-written'].includes(k.point!) && !plan.pre) {
    expect(left.indexes).toHaveLength(1);
  }
  if (['packs-committed', 'index-written', 'manifest-written'].includes(k.point!) && !plan.pre) {
    // Every upload is waited for before the index names the packs.
    expect(left.unindexed).toEqual([]);
    if (!plan.pre) expect(left.indexes).toHaveLength(2);
  }

  const repo = await PackedRepository.open(url);
  try {
    const listed = ids(await repo.list());
    // The old backup, and the new one whole or not at all.
    expect(listed[0]).toBe(s.old.id);
    const added = listed.slice(1);
    expect(added.length).toBeLessThanOrEqual(1);
    if (!k.killed || k.point === 'manifest-written') expect(added).toHaveLength(1);
    else if (k.point) expect(added).toEqual([]);

    // A backup takes a shared hold, never the LOCK: a killed one leaves its hold (a dead process's: it stops nobody).
    expect(left.lock, 'a backup takes no LOCK').toBeUndefined();
    if (k.point) expect(left.holds.length, 'a backup killed at a crash point leaves its hold').toBeGreaterThan(0);
    expectNoDamage(await repo.verify(), listed);
    await expectRestores(repo, s.old.id, s.plainOld);
    if (added[0]) await expectRestores(repo, added[0], s.plainNew);

    // The next backup succeeds; the next expire (alone in the repository) cleans up what the killed one left.
    const next = await repo.backup(s.data);
    expect(ids(await repo.list())).toEqual([...listed, next.id]);
    await repo.expire({ retainFull: 10 });
    expectTidy(await repoState(t, url, s.unseal));
    expectClean(await repo.verify(), [...listed, next.id]);
    if (!added[0]) await expectRestores(repo, next.id, s.plainNew);
    return { ...k, added: added.length, newPacks: newPacks.length, unindexed: left.unindexed.length };
  } finally {
    repo.close();
  }
}

// ------------------------------------------------------------------ expire

/**
 * A pristine repository where `expire({ retainFull: 1 })` must delete two
 * snapshots, delete whole packs and repack sparse ones (as in
 * fault-injection-v2.spec.ts, smaller):
 * - F1: a database sharing nothing with the others; its pack becomes wholly unused;
 * - F2: database x;
 * - F3: x after a score update of every 200th row, which changes about every
 *   other 64 KiB run of the heap, so F2's pack becomes sparse;
 * - I4: an increment on F3 after rows were added.
 * F3 and I4 are retained.
 */
async function expireScenario(t: S3Target) {
  const url = freshPrefix(t, 'fi-expire-pristine');
  const repo = await PackedRepository.init(url, { compression: 'none' });
  const plain: Record<string, string> = {};
  const take = async (data: string, type?: 'full') => {
    // Two databases share one source on purpose (chunks only one of them uses; retention counts per source).
    const record = await repo.backup(data, { ...(type ? { type } : {}), source: 'shared', sameDatabase: true });
    plain[record.id] = await plainNow(data);
    return record;
  };
  const y = join(scratch(), 'y');
  fixture(GEN, 'create', y, '--table', 'Y', '--rows', 0, '--index');
  fixture(GEN, 'insert', y, '--table', 'Y', '--from', 1_000_000, '--count', 6000, '--pad', 600);
  const f1 = await take(y, 'full');
  const x = makeDb(8000, '--index', '--pad', '600');
  const f2 = await take(x, 'full');
  fixture(GEN, 'update', x, '--every', 200);
  const f3 = await take(x, 'full');
  fixture(GEN, 'insert', x, '--table', 'T', '--from', 8000, '--count', 1000, '--pad', 600);
  const i4 = await take(x);
  expect(i4.parent).toBe(f3.id);
  repo.close();
  const objects = await readObjects(t, url);
  await deletePrefix(t, `${url}/`);
  const keys = [...objects.keys()];
  return {
    objects,
    plain,
    removed: [f1.id, f2.id],
    retained: [f3.id, i4.id],
    indexes: keys.filter((k) => k.startsWith('index/')).length,
    packs: keys.filter((k) => k.startsWith('data/')),
    unseal: unsealerOf(objects.get('config')!.toString('utf8'), [], PASSWORD),
  };
}

interface PruneCounts {
  packsWritten: number;
  packsRemoved: number;
}

async function expireRun(
  t: S3Target,
  s: Awaited<ReturnType<typeof expireScenario>>,
  counts: PruneCounts,
  plan: Plan,
  url: string,
) {
  const k = await killRun(t, url, childArgs('expire', url, '1'), plan);

  // What the kill left, against the protocol's table.
  const left = await repoState(t, url, s.unseal);
  expect(left.missing, 'every pack an index lists exists').toEqual([]);
  await expectWholePacks(t, url, left.unindexed, s.unseal);
  const gone = s.packs.filter((p) => !left.packs.includes(p)).length;
  if (k.point && !plan.pre) {
    // Until step 4 of the prune every pack is still present (some perhaps no longer indexed).
    const n = k.n;
    const expected: Partial<Record<string, { indexes: number; unindexed?: number; gone: number }>> = {
      'expire-renamed': { indexes: s.indexes, unindexed: 0, gone: 0 },
      'prune-pack-written': { indexes: s.indexes, gone: 0 },
      'prune-index-written': { indexes: s.indexes + 1, unindexed: 0, gone: 0 },
      'prune-index-removed': { indexes: s.indexes + 1 - n, gone: 0 },
      'prune-pack-removed': { indexes: 1, unindexed: counts.packsRemoved - n, gone: n },
    };
    const want = expected[k.point]!;
    expect({ indexes: left.indexes.length, gone }).toEqual({ indexes: want.indexes, gone: want.gone });
    if (want.unindexed !== undefined) expect(left.unindexed).toHaveLength(want.unindexed);
    // Packs upload in the background: a kill right after one is handed over may leave it unwritten.
    if (k.point === 'prune-pack-written') expect(left.unindexed.length).toBeLessThanOrEqual(n);
  }

  const repo = await PackedRepository.open(url);
  try {
    const listed = ids(await repo.list());
    // Every retained backup; of the expired ones, the oldest few (removal goes newest first).
    const stillListed = s.removed.filter((id) => listed.includes(id));
    expect(listed).toEqual([...stillListed, ...s.retained]);
    expect(stillListed).toEqual(s.removed.slice(0, stillListed.length));
    if (!k.killed || k.point?.startsWith('prune-')) expect(stillListed).toEqual([]);
    if (k.point === 'expire-renamed') expect(stillListed).toHaveLength(s.removed.length - k.n);

    const stale = lockAfterKill(k, left.lock);
    expectNoDamage(await repo.verify(), listed);
    for (const id of listed) await expectRestores(repo, id, s.plain[id]!);

    // The expire again: it completes and leaves the retained backups only, in one index.
    const { result: again, warnings } = await warningsOf(
      () => repo.expire({ retainFull: 1 }),
      (m) => m.includes(`${url} `),
    );
    expectTakeover(warnings, stale);
    expect({ removed: again.removed, kept: again.kept }).toEqual({ removed: stillListed, kept: s.retained });
    expect(ids(await repo.list())).toEqual(s.retained);
    const state = await repoState(t, url, s.unseal);
    expectTidy(state);
    expect(state.indexes.length).toBeLessThanOrEqual(1);
    expectClean(await repo.verify(), s.retained);
    for (const id of s.retained) await expectRestores(repo, id, s.plain[id]!);
    const packsWritten = left.packs.filter((p) => !s.packs.includes(p)).length;
    return { ...k, stillListed: stillListed.length, packsWritten, packsRemoved: gone };
  } finally {
    repo.close();
  }
}

// ------------------------------------------------------------------ damage

type Mode = 'plain' | 'encrypted';
const MODES: Mode[] = ['plain', 'encrypted'];
const openOptions = (mode: Mode) => (mode === 'encrypted' ? { password: PASSWORD } : {});

/**
 * A pristine repository (compression zstd, as repository-v2.spec.ts's
 * damage tests) with a full backup A and an increment B, each in a pack and
 * an index of its own.
 */
async function damageScenario(t: S3Target, mode: Mode) {
  const data = makeDb(4000, '--index');
  const url = freshPrefix(t, `damage-${mode}-pristine`);
  const repo = await PackedRepository.init(
    url,
    mode === 'encrypted' ? { encrypt: true, password: PASSWORD, kdf: KDF } : {},
  );
  const o0 = await keysOf(t, url);
  const a = await repo.backup(data);
  const plainA = await plainNow(data);
  const o1 = await keysOf(t, url);
  fixture(GEN, 'insert', data, '--table', 'T', '--from', 4000, '--count', 400);
  const b = await repo.backup(data);
  const plainB = await plainNow(data);
  const o2 = await keysOf(t, url);
  repo.close();
  const added = (before: string[], after: string[], prefix: string) =>
    after.filter((k) => !before.includes(k) && k.startsWith(prefix));
  const [packsA, packsB, indexA, indexB] = [
    added(o0, o1, 'data/'),
    added(o1, o2, 'data/'),
    added(o0, o1, 'index/'),
    added(o1, o2, 'index/'),
  ];
  // The scenario needs one pack and one index per backup.
  expect([packsA.length, packsB.length, indexA.length, indexB.length]).toEqual([1, 1, 1, 1]);
  const objects = await readObjects(t, url);
  await deletePrefix(t, `${url}/`);
  return {
    data,
    objects,
    a,
    b,
    plain: { [a.id]: plainA, [b.id]: plainB },
    packA: packsA[0]!,
    indexB: indexB[0]!,
    keyFile: [...objects.keys()].find((k) => k.startsWith('keys/')),
  };
}

/**
 * Flips the byte at `at(bytes)` of one object with a raw GET and PUT, and
 * reads it back: the server must now hold exactly that damage.
 */
async function flipByte(t: S3Target, url: string, rel: string, at: (bytes: Buffer) => { i: number; mask: number }) {
  const before = await getObject(t, url, rel);
  const { i, mask } = at(before);
  const after = Buffer.from(before);
  after[i] = after[i]! ^ mask;
  await putObject(t, url, rel, after);
  const stored = await getObject(t, url, rel);
  expect({ rel, same: stored.equals(after), changed: !stored.equals(before) }).toEqual({
    rel,
    same: true,
    changed: true,
  });
  return rel;
}

/** At a fraction of the object, with the mask of repository-v2.spec.ts. */
const atFraction =
  (f: number) =>
  (b: Buffer): { i: number; mask: number } => ({ i: Math.floor(b.length * f), mask: 0x5a });
/** The first decimal digit of a hex field of a JSON object, to another digit: still valid JSON and hex. */
const inHexField =
  (field: string) =>
  (b: Buffer): { i: number; mask: number } => {
    const text = b.toString('latin1');
    const m = new RegExp(`"${field}"\\s*:\\s*"([0-9a-f]+)"`).exec(text);
    if (!m) throw new Error(`no hex field ${field}`);
    const digit = m[1]!.search(/[0-9]/);
    expect(digit, `${field} has a decimal digit`).toBeGreaterThanOrEqual(0);
    return { i: m.index + m[0].indexOf(m[1]!) + digit, mask: 0x01 };
  };

/** Restore of `asOf` must fail with `code`, leaving no destination and nothing beside it. */
async function expectRestoreRefused(repo: PackedRepository, asOf: string, code: string): Promise<void> {
  const parent = scratch();
  const dest = join(parent, 'restored');
  const err = await rejectsWith(repo.restore(dest, { asOf }), code);
  expect(err.message).not.toBe('');
  expect(existsSync(dest)).toBe(false);
  expect(readdirSync(parent)).toEqual([]);
}

type Damaged = Awaited<ReturnType<typeof damageScenario>>;
interface DamageContext {
  d: Damaged;
  url: string;
  /** The key of the object with the flipped byte. */
  flipped: string;
  open: () => Promise<PackedRepository>;
}

/**
 * Verify fails the reports of exactly `broken`, each error with `code`, and
 * the repository's report when `repository` (its errors then name what it
 * matches); restore refuses each of `broken` with `code` (verify and restore
 * agree); every other backup restores byte-identical.
 */
async function expectDamage(
  c: DamageContext,
  o: { broken: string[]; code: string; repository: false | RegExp },
): Promise<void> {
  const repo = await c.open();
  try {
    const results = await repo.verify();
    // The repository's report first; an unreadable snapshot's report may come before the others.
    expect([
      results[0]!.id,
      ...results
        .slice(1)
        .map((r) => r.id)
        .sort(),
    ]).toEqual(['repository', ...[c.d.a.id, c.d.b.id].sort()]);
    const repository = results[0]!.report;
    if (o.repository) {
      expect(repository.ok).toBe(false);
      for (const e of repository.errors) expect(e.code).toBe('ERR_INTEGRITY');
      expect(repository.errors.map((e) => e.message).join('\n')).toMatch(o.repository);
    } else {
      expect(repository).toMatchObject({ ok: true, errors: [] });
    }
    const bad = results.filter((r) => r.id !== 'repository' && !r.report.ok).map((r) => r.id);
    expect(bad.sort()).toEqual([...o.broken].sort());
    for (const r of results.filter((r) => bad.includes(r.id))) {
      expect(r.report.errors.length).toBeGreaterThan(0);
      for (const e of r.report.errors) expect({ id: r.id, code: e.code }).toEqual({ id: r.id, code: o.code });
    }
    for (const id of [c.d.a.id, c.d.b.id]) {
      if (o.broken.includes(id)) await expectRestoreRefused(repo, id, o.code);
      else await expectRestores(repo, id, c.d.plain[id]!);
    }
  } finally {
    repo.close();
  }
}

/** Opening the repository (which verify and restore begin with) is refused with `code`, naming `names`. */
async function expectOpenRefused(c: DamageContext, code: string, names: RegExp): Promise<void> {
  const err = await rejectsWith(c.open(), code);
  expect(err.message).toMatch(names);
}

const DAMAGE: {
  name: string;
  modes: Mode[];
  object: (d: Damaged) => string;
  at: (bytes: Buffer) => { i: number; mask: number };
  check: (c: DamageContext) => Promise<void>;
}[] = [
  {
    name: "a pack (A's): verify names the pack and the backups that need it, their restore is refused",
    modes: MODES,
    object: (d) => d.packA,
    at: atFraction(1 / 3),
    async check(c) {
      const repo = await c.open();
      const results = await repo.verify();
      repo.close();
      // Dedup: B also uses chunks of A's pack, so the damage may break B as well.
      const bad = results.filter((r) => r.id !== 'repository' && !r.report.ok).map((r) => r.id);
      expect(bad).toContain(c.d.a.id);
      const pack = new RegExp(`pack ${c.flipped}`);
      await expectDamage(c, { broken: bad, code: 'ERR_INTEGRITY', repository: pack });
    },
  },
  {
    name: "an index object (B's): verify names it and B's chunks as missing, restore refuses B; writers stop until repair",
    modes: MODES,
    object: (d) => d.indexB,
    at: atFraction(1 / 2),
    async check(c) {
      // The chunks only the damaged index lists are not in the repository's index (ERR_MISSING_FILE,
      // as repository-v2.spec.ts expects for a lost index), whichever way restore and verify see them.
      await expectDamage(c, { broken: [c.d.b.id], code: 'ERR_MISSING_FILE', repository: new RegExp(c.flipped) });
      const repo = await c.open();
      try {
        const refused = repo.backup(c.d.data);
        await expect(refused).rejects.toThrow(/powdb-backup repair --repo/);
        await rejectsWith(refused, 'ERR_INTEGRITY');
        expect(await repo.repair()).toMatchObject({
          indexesRemoved: 1,
          packsIndexed: 1,
          packsRemoved: 0,
          packsDamaged: 0,
        });
        expect((await repo.verify()).filter((r) => !r.report.ok)).toEqual([]);
        for (const id of [c.d.a.id, c.d.b.id]) await expectRestores(repo, id, c.d.plain[id]!);
      } finally {
        repo.close();
      }
    },
  },
  {
    name: "a snapshot (B's): verify names B, restore refuses B, A restores",
    modes: MODES,
    object: (d) => `snapshots/${d.b.id}`,
    at: atFraction(1 / 2),
    check: (c) => expectDamage(c, { broken: [c.d.b.id], code: 'ERR_INTEGRITY', repository: false }),
  },
  {
    name: 'the config, no longer JSON: the repository is refused (ERR_NOT_A_REPO)',
    modes: MODES,
    object: () => 'config',
    at: () => ({ i: 0, mask: 0x5a }),
    check: (c) => expectOpenRefused(c, 'ERR_NOT_A_REPO', /config/),
  },
  {
    name: 'the config, its id key: every index and snapshot fails its seal, every restore is refused',
    modes: ['plain'],
    object: () => 'config',
    at: inHexField('id_key_hex'),
    check: (c) =>
      expectDamage(c, { broken: [c.d.a.id, c.d.b.id], code: 'ERR_INTEGRITY', repository: /index\/[0-9a-f]{64}/ }),
  },
  {
    name: 'the config, its repository id (which binds the key files): the password opens no key (ERR_BAD_PASSWORD)',
    modes: ['encrypted'],
    object: () => 'config',
    at: inHexField('id'),
    check: (c) => expectOpenRefused(c, 'ERR_BAD_PASSWORD', /opens none of the 1 key/),
  },
  {
    name: 'a key file, its wrapped key: the password opens no key (ERR_BAD_PASSWORD)',
    modes: ['encrypted'],
    object: (d) => d.keyFile!,
    at: inHexField('wrapped_hex'),
    check: (c) => expectOpenRefused(c, 'ERR_BAD_PASSWORD', /opens none of the 1 key/),
  },
];

// ------------------------------------------------------------------- kills

describe.each(targets.map((t) => [t.name, t] as const))('a repository on %s', (_name, t) => {
  const rngFor = (what: number) => mulberry32(SEED + what * 1000 + targets.indexOf(t));
  beforeAll(() => useTarget(t));
  afterAll(restoreEnv);

  // The backup and the expire run side by side: each in repositories of its own.
  describe.concurrent('killed at any moment', () => {
    it(
      `a backup: at every crash point and ${RANDOM_RUNS} random moments`,
      async () => {
        const s = await backupScenario(t);
        const runs: string[] = [];
        const go = async (plan: Plan) => {
          const url = await plant(t, s.objects, 'fi-backup');
          let r: Awaited<ReturnType<typeof backupRun>> | undefined;
          try {
            await step(`${t.name} backup, ${plan.label}`, async () => {
              r = await backupRun(t, s, plan, url);
            });
          } finally {
            await deletePrefix(t, `${url}/`);
          }
          return r!;
        };

        // A run to the end: how long the operation takes, and how often the counted points are reached.
        const clean = await go({ label: 'no kill' });
        expect({ killed: clean.killed, type: clean.run.result.type }).toEqual({ killed: false, type: 'incr' });
        const packs = clean.newPacks;
        expect(packs, 'the increment must fill at least two packs').toBeGreaterThanOrEqual(2);
        const files: number = clean.run.result.files;
        const ms = clean.run.opMs;

        const plans: Plan[] = [
          killedAt('lock-acquired', 1),
          killedAt('file-done', 1),
          killedAt('file-done', files),
          killedAt('pack-written', 1),
          killedAt('pack-written', packs),
          killedAt('packs-committed', 1),
          killedAt('index-written', 1),
          killedAt('manifest-written', 1),
          ...randomKills(rngFor(1), ms, RANDOM_RUNS),
          // A backup that must first settle what a backup killed before its index left.
          ...afterKill(PACKS_UPLOADED, [killedAt('lock-acquired', 1)]),
          ...afterKill(`pack-written:${packs}`, randomKills(rngFor(3), ms, 1)),
        ];
        for (const plan of plans) {
          const r = await go(plan);
          const what = !r.killed ? 'finished' : r.added ? 'killed after its snapshot' : 'killed';
          runs.push(`${plan.label}: ${what}${r.killed ? ` (${r.unindexed} unindexed)` : ''}`);
        }
        console.log(
          `${t.name} backup (clean run ${ms.toFixed(0)} ms, ${packs} packs, ${files} files): ${runs.join('; ')}`,
        );
      },
      TIMEOUT,
    );

    it(
      `an expire with prune: at every crash point and ${RANDOM_RUNS} random moments`,
      async () => {
        const s = await expireScenario(t);
        const runs: string[] = [];
        // Set by the run to the end, before any kill.
        let counts: PruneCounts = { packsWritten: 0, packsRemoved: 0 };
        const go = async (plan: Plan) => {
          const url = await plant(t, s.objects, 'fi-expire');
          let r: Awaited<ReturnType<typeof expireRun>> | undefined;
          try {
            await step(`${t.name} expire, ${plan.label}`, async () => {
              r = await expireRun(t, s, counts, plan, url);
            });
          } finally {
            await deletePrefix(t, `${url}/`);
          }
          return r!;
        };

        // A run to the end: every point must be reachable (snapshots deleted, packs
        // repacked and deleted whole), and how often each is reached.
        const clean = await go({ label: 'no kill' });
        expect(clean.killed).toBe(false);
        counts = { packsWritten: clean.packsWritten, packsRemoved: clean.packsRemoved };
        const pruned = clean.run.result.pruned;
        expect({ removed: clean.run.result.removed, kept: clean.run.result.kept }).toEqual({
          removed: s.removed,
          kept: s.retained,
        });
        expect(pruned.packsRepacked, 'a sparse pack is repacked').toBeGreaterThanOrEqual(1);
        expect(pruned.packsRemoved - pruned.packsRepacked, 'a wholly unused pack is deleted').toBeGreaterThanOrEqual(1);
        expect(pruned.packsRemoved).toBe(counts.packsRemoved);
        expect(counts.packsWritten).toBeGreaterThanOrEqual(1);
        expect(s.indexes).toBeGreaterThanOrEqual(2);
        const ms = clean.run.opMs;

        const plans: Plan[] = [
          killedAt('expire-renamed', 1),
          killedAt('expire-renamed', s.removed.length),
          killedAt('prune-pack-written', 1),
          killedAt('prune-index-written', 1),
          killedAt('prune-index-removed', 1),
          killedAt('prune-index-removed', s.indexes),
          killedAt('prune-pack-removed', 1),
          killedAt('prune-pack-removed', counts.packsRemoved),
          ...randomKills(rngFor(2), ms, RANDOM_RUNS),
          // An expire that must first settle the old packs a prune killed in step 4 left unindexed.
          ...afterKill('prune-pack-removed:1', randomKills(rngFor(4), ms, 1)),
        ];
        for (const plan of plans) {
          const r = await go(plan);
          runs.push(`${plan.label}: ${r.killed ? `killed (${r.stillListed} expired listed)` : 'finished'}`);
        }
        console.log(
          `${t.name} expire (clean run ${ms.toFixed(0)} ms; ${s.indexes} indexes, ${counts.packsWritten} packs written, ` +
            `${pruned.packsRepacked} repacked, ${counts.packsRemoved} removed): ${runs.join('; ')}`,
        );
      },
      TIMEOUT,
    );
  });

  describe.each(MODES)('a flipped byte in a %s repository', (mode) => {
    let d: Awaited<ReturnType<typeof damageScenario>>;
    beforeAll(async () => {
      d = await damageScenario(t, mode);
    }, 60_000);

    it.each(DAMAGE.filter((c) => c.modes.includes(mode)))('$name', async (c) => {
      const url = await plant(t, d.objects, `damage-${mode}`);
      try {
        await step(`${t.name} ${mode}, ${c.name}`, async () => {
          const flipped = await flipByte(t, url, c.object(d), c.at);
          await c.check({ d, url, flipped, open: () => PackedRepository.open(url, openOptions(mode)) });
        });
      } finally {
        await deletePrefix(t, `${url}/`);
      }
    });
  });
});
