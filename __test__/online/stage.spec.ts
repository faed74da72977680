// Staging a consistent copy of a live powdb-server 0.29.0's data directory
// (serverStage over crate/src/core/online/stage.rs) while writers run, then
// opening the copy with the real engine (powdb-cli --data-dir: WAL replay,
// index rebuild, checkpoint) and checking it against what the writers were
// told: every insert acknowledged before the freeze began is there, none sent
// after it ended is, each writer's rows are a prefix of what it sent, no
// rolled-back row is, `powdb-cli verify` is clean. The negative controls show
// that these checks see the failures the stage exists to prevent.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverStage, type ServerStageOptions, type ServerStageReport } from '../../lib/online/server.js';
import { rejectsWith, tmp } from '../helpers.js';
import { powdbBinaries, startPowdbServer, type PowdbServer, type User } from '../powdb-server.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Wall-clock ms with a fraction, comparable with the report's frozenAtUnixMs. */
const now = () => performance.timeOrigin + performance.now();
const BIG = 'x'.repeat(6000); // a value stored in overflow pages

/** A writer inserting ids base+1, base+2, ... one statement at a time, noting when each was sent and acknowledged. */
class Writer {
  readonly sent: number[] = [];
  readonly acked: number[] = [];
  #stopped = false;
  readonly done: Promise<void>;

  constructor(
    server: PowdbServer,
    readonly base: number,
    big = false,
  ) {
    this.done = (async () => {
      for (let k = 1; !this.#stopped; k++) {
        const note = big && k % 10 === 0 ? `, note := "${BIG}"` : '';
        this.sent.push(now());
        const run = server.start(APP.name, APP.password, `insert T { id := ${base + k}, v := ${k}${note} }`);
        const answer = await run.answered;
        if (!answer.stdout.includes('"affected":1')) throw new Error(`insert ${base + k}: ${(await run.done).stderr}`);
        this.acked.push(now());
        await run.done;
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }
}

/** Explicit transactions that insert and roll back: each rollback checkpoints the server. */
function rollbacks(server: PowdbServer, base: number, count: { n: number }, stop: { stopped: boolean }) {
  return (async () => {
    for (let k = 1; !stop.stopped; k++) {
      const r = await server.run(APP.name, APP.password, `begin; insert T { id := ${base + k}, v := 0 }; rollback`);
      if (r.code !== 0) throw new Error(`rollback writer: ${r.stderr}`);
      count.n++;
    }
  })();
}

async function makeServer(env?: Record<string, string>): Promise<PowdbServer> {
  const server = await startPowdbServer({ users: [APP], env });
  await server.query(APP.name, APP.password, 'type T { required unique id: int, v: int, note: str }');
  for (let b = 0; b < 5; b++) {
    const batch = Array.from({ length: 200 }, (_, i) => `insert T { id := ${b * 200 + i + 1}, v := 0 }`);
    const r = await server.run(APP.name, APP.password, batch.join('; '));
    if (r.code !== 0) throw new Error(`seeding: ${r.stderr}`);
  }
  return server;
}

/** Runs powdb-cli on a stopped copy (an embedded open: replay, index rebuild, checkpoint at exit). */
function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(powdbBinaries().cli, args, { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The ids a copy holds, read by the real engine, and what `powdb-cli verify` says of it. */
function openCopy(dir: string): { ids: Set<number>; verify: { ok: boolean; stdout: string } } {
  const read = cli('--data-dir', dir, '--format', 'json', '--exec', 'T { .id }');
  if (read.code !== 0) throw new Error(`powdb-cli could not open ${dir}: ${read.stderr}`);
  const ids = new Set<number>((JSON.parse(read.stdout).rows as number[][]).map((r) => r[0]!));
  const verify = cli('verify', '--data-dir', dir, '--format', 'json');
  const ok = verify.code === 0 && (JSON.parse(verify.stdout) as { ok: boolean }).ok;
  return { ids, verify: { ok, stdout: verify.stdout } };
}

/** Checks a writer's rows in a copy frozen at [from, to]; returns how many of its rows the copy holds. */
function checkWriter(ids: Set<number>, w: Writer, from: number, to: number): number {
  let k = 0;
  while (ids.has(w.base + k + 1)) k++;
  // A prefix: nothing of this writer after its first missing row.
  for (let j = k + 2; j <= w.sent.length; j++)
    expect(ids.has(w.base + j), `writer ${w.base}: ${j} without ${k + 1}`).toBe(false);
  const ackedBefore = w.acked.filter((t) => t < from).length;
  const sentBefore = w.sent.filter((t) => t < to).length;
  expect(k, `writer ${w.base}: acknowledged before the freeze`).toBeGreaterThanOrEqual(ackedBefore);
  expect(k, `writer ${w.base}: sent before the freeze ended`).toBeLessThanOrEqual(sentBefore);
  return k;
}

async function stage(
  server: PowdbServer,
  options?: ServerStageOptions,
): Promise<{ dir: string; report: ServerStageReport }> {
  const dir = join(tmp(), 'staged');
  mkdirSync(dir);
  const report = await serverStage(server.dataDir, dir, server.login(APP.name, APP.password), options);
  return { dir, report };
}

/** Copies the live directory's heaps and small files as they are, without the WAL and without a freeze. */
function plainCopy(from: string): string {
  const dir = join(tmp(), 'plain');
  mkdirSync(dir);
  for (const name of readdirSync(from)) {
    if (name.endsWith('.heap') || ['catalog.bin', 'catalog.lsn', 'auth.json'].includes(name)) {
      copyFileSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

const json = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? Number(x) : x));

describe('serverStage', () => {
  it('stages a copy under concurrent writers and checkpoints with a freeze of milliseconds', async () => {
    const server = await makeServer();
    const writers = [new Writer(server, 1_000_000, true), new Writer(server, 2_000_000)];
    const stop = { stopped: false };
    const rolledBack = { n: 0 };
    const rollbackLoop = rollbacks(server, 9_000_000, rolledBack, stop);
    await sleep(1500);
    const { dir, report } = await stage(server);
    await sleep(500);
    stop.stopped = true;
    await Promise.all([...writers.map((w) => w.stop()), rollbackLoop]);

    const from = report.frozenAtUnixMs;
    const to = from + report.freezeMs;
    expect(readdirSync(dir).sort()).toEqual(['T.heap', 'auth.json', 'catalog.bin', 'catalog.lsn', 'wal.log']);
    const { ids, verify } = openCopy(dir);
    expect(verify.ok, verify.stdout).toBe(true);
    for (let id = 1; id <= 1000; id++) expect(ids.has(id)).toBe(true);
    const held = writers.map((w) => checkWriter(ids, w, from, to));
    expect(held.every((k) => k > 0)).toBe(true);
    // Writes went on after the freeze, and none of them is in the copy.
    expect(writers.every((w) => w.sent.some((t) => t > to))).toBe(true);
    expect([...ids].filter((id) => id > 9_000_000)).toEqual([]);
    expect(rolledBack.n).toBeGreaterThan(0);
    expect(report.freezeWorkMs).toBeLessThan(100);
    expect(report.freezeMs).toBeLessThan(1000);
    expect(report.heapPages).toBeGreaterThan(0n);
    console.log('stage under load:', json(report));
  });

  it('freezes for milliseconds whatever the size: tens of MiB are copied before the freeze', async () => {
    const server = await makeServer();
    const q = (powql: string) => server.query(APP.name, APP.password, powql);
    await q('type B { required unique id: int, note: str }');
    for (let b = 0; b < 4; b++) {
      const batch = Array.from(
        { length: 100 },
        (_, i) => `insert B { id := ${b * 100 + i + 1}, note := "${'y'.repeat(1000)}" }`,
      );
      const r = await server.run(APP.name, APP.password, batch.join('; '));
      if (r.code !== 0) throw new Error(`seeding B: ${r.stderr}`);
    }
    for (let i = 0; i < 6; i++) {
      await q('B filter .id <= 200 update { note := concat(.note, .note) }');
      await q('B filter .id > 200 update { note := concat(.note, .note) }');
    }
    // A checkpoint (a rollback makes one): the WAL, which the freeze reads whole, starts small again.
    await server.run(APP.name, APP.password, 'begin; rollback');
    const writer = new Writer(server, 1_000_000, true);
    await sleep(500);
    const started = now();
    const { dir, report } = await stage(server);
    const took = now() - started;
    await writer.stop();
    const heapBytes = Number(report.heapPages) * 4096;
    expect(heapBytes).toBeGreaterThan(24 << 20);
    const { ids, verify } = openCopy(dir);
    expect(verify.ok, verify.stdout).toBe(true);
    expect(checkWriter(ids, writer, report.frozenAtUnixMs, report.frozenAtUnixMs + report.freezeMs)).toBeGreaterThan(0);
    expect(report.freezeWorkMs).toBeLessThan(50);
    expect(report.freezeWorkMs * 10).toBeLessThan(took);
    console.log(`large: ${heapBytes >> 20} MiB of heaps staged in ${took.toFixed(0)} ms:`, json(report));
  });

  it('negative control: the heaps copied without the WAL lose acknowledged rows', async () => {
    const server = await makeServer();
    const writer = new Writer(server, 1_000_000);
    await sleep(1000);
    const copiedAt = now();
    const dir = plainCopy(server.dataDir);
    await writer.stop();
    const { ids } = openCopy(dir);
    const acked = writer.acked.filter((t) => t < copiedAt).length;
    const lost = Array.from({ length: acked }, (_, k) => writer.base + k + 1).filter((id) => !ids.has(id));
    expect(acked).toBeGreaterThan(0);
    expect(lost.length, 'rows acknowledged before the copy and missing from it').toBeGreaterThan(0);
  });

  it('a checkpoint between the pass and the freeze is caught and the pass runs again; with the check off, the row is lost', async () => {
    const server = await makeServer();
    // After the first pass: an insert (acknowledged before the freeze), then a checkpoint (begin + rollback).
    const between = ['insert T { id := 5000, v := 1 }', 'begin', 'rollback'];
    const checked = await stage(server, { testBeforeFreeze: between });
    expect(checked.report.attempts).toBeGreaterThanOrEqual(2);
    expect(checked.report.retries[0]).toMatch(/a checkpoint rewrote the WAL/);
    const good = openCopy(checked.dir);
    expect(good.ids.has(5000)).toBe(true);
    expect(good.verify.ok, good.verify.stdout).toBe(true);

    const between2 = ['insert T { id := 5001, v := 1 }', 'begin', 'rollback'];
    const blind = await stage(server, { testBeforeFreeze: between2, testSkipWindowCheck: true });
    expect(blind.report.attempts).toBe(1);
    const bad = openCopy(blind.dir);
    expect(bad.ids.has(5000)).toBe(true); // committed before this stage's pass
    expect(bad.ids.has(5001), 'the row the checkpoint took out of the WAL').toBe(false);
  });

  it('a checkpoint while the freeze is asked for is seen under it, and the changed heaps are read again under that same freeze', async () => {
    const server = await makeServer();
    // After the WAL pre-read, just before `begin`: the same insert and checkpoint (begin + rollback).
    const between = ['insert T { id := 5000, v := 1 }', 'begin', 'rollback'];
    const { dir, report } = await stage(server, { testAfterPreread: between });
    expect(report.attempts).toBe(1);
    expect(report.retries).toEqual([]);
    expect(report.refreshedUnderFreeze).toBe(true);
    expect(report.pagesRecopied).toBeGreaterThan(0n);
    const copy = openCopy(dir);
    expect(copy.ids.has(5000)).toBe(true);
    expect(copy.verify.ok, copy.verify.stdout).toBe(true);
  });

  it('a WAL empty at the pass start gets a record first (an empty transaction), so a checkpoint that empties it again is caught', async () => {
    const server = await makeServer();
    await server.run(APP.name, APP.password, 'begin; rollback'); // a checkpoint: the WAL is its header alone
    expect(statSync(join(server.dataDir, 'wal.log')).size).toBe(8);
    // The same insert and checkpoint after the pass leave the WAL empty again at the freeze.
    const between = ['insert T { id := 5000, v := 1 }', 'begin', 'rollback'];
    const { dir, report } = await stage(server, { testBeforeFreeze: between });
    expect(report.retries[0]).toMatch(/a checkpoint rewrote the WAL/);
    const copy = openCopy(dir);
    expect(copy.ids.has(5000)).toBe(true);
    expect(copy.verify.ok, copy.verify.stdout).toBe(true);
  });

  it('after max attempts, refreshes the changed heaps under the freeze when that fits the budget', async () => {
    const server = await makeServer();
    const between = ['insert T { id := 5000, v := 1 }', 'begin', 'rollback'];
    const { dir, report } = await stage(server, { maxAttempts: 1, testBeforeFreeze: between });
    expect(report.attempts).toBe(2);
    expect(report.refreshedUnderFreeze).toBe(true);
    expect(report.pagesRecopied).toBeGreaterThan(0n);
    const copy = openCopy(dir);
    expect(copy.ids.has(5000)).toBe(true);
    expect(copy.verify.ok, copy.verify.stdout).toBe(true);
  });

  it('DDL during the pass is caught (replay is by name) and the copy holds the new table', async () => {
    const server = await makeServer();
    const ddl = ['type U { required id: int }', 'insert U { id := 7 }'];
    const { dir, report } = await stage(server, { testBeforeFreeze: ddl });
    expect(report.retries[0]).toMatch(/DDL|catalog\.bin changed|heap files changed|checkpoint/);
    const u = cli('--data-dir', dir, '--format', 'json', '--exec', 'U { .id }');
    expect(JSON.parse(u.stdout).rows).toEqual([[7]]);
  });

  it('a freeze the server reaps (POWDB_TX_MAX_LIFETIME_MS) fails its attempt, and the next one succeeds', async () => {
    const server = await makeServer({ POWDB_TX_MAX_LIFETIME_MS: '300', POWDB_TX_WAIT_TIMEOUT_MS: '30000' });
    const { dir, report } = await stage(server, { testHoldFreezeMs: 1000 });
    expect(report.attempts).toBeGreaterThanOrEqual(2);
    expect(report.retries[0]).toMatch(/^ERR_FREEZE_LOST: .*maximum lifetime/);
    expect(report.freezeMs).toBeLessThan(300);
    const copy = openCopy(dir);
    expect(copy.ids.size).toBe(1000);
    expect(copy.verify.ok, copy.verify.stdout).toBe(true);
  });

  it('the watchdog ends a freeze before its budget is spent, and the next attempt succeeds', async () => {
    const server = await makeServer();
    const { dir, report } = await stage(server, { budgetMs: 500, testHoldFreezeMs: 1500 });
    expect(report.retries[0]).toMatch(/^ERR_FREEZE_BUDGET: /);
    expect(report.longestFreezeMs).toBeGreaterThan(300);
    expect(report.longestFreezeMs).toBeLessThan(500);
    const copy = openCopy(dir);
    expect(copy.ids.size).toBe(1000);
    expect(copy.verify.ok, copy.verify.stdout).toBe(true);
  });

  it('refuses a server in WAL mode off (ERR_WAL_OFF) and a server that does not serve the directory (ERR_SERVER_MISMATCH)', async () => {
    const off = await makeServer({ POWDB_SYNC_MODE: 'off' });
    const e = await rejectsWith(stage(off), 'ERR_WAL_OFF');
    expect(e.message).toMatch(/POWDB_SYNC_MODE=off/);

    const a = await makeServer();
    const b = await makeServer();
    const dir = join(tmp(), 'staged');
    mkdirSync(dir);
    const wrong = await rejectsWith(
      serverStage(a.dataDir, dir, b.login(APP.name, APP.password)),
      'ERR_SERVER_MISMATCH',
    );
    expect(wrong.message).toMatch(/does not serve this directory/);
    // The control: the right server.
    expect((await stage(a)).report.attempts).toBeGreaterThanOrEqual(1);
  });
});
