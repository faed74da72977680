// The online-backup tests' workload and checks (./workload.ts) against a real
// powdb-server 0.29.0, with the copies that exist today: the checks must
// reject a plain copy of the live directory (or they are blind), and must
// pass a copy of a cleanly stopped server and a crash image taken with the
// server paused (SIGSTOP), which the engine recovers.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmp } from '../helpers.js';
import { startPowdbServer, type User } from '../powdb-server.js';
import { checkRestored, startWorkload, type CheckResult, type FreezeWindow } from './workload.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Plain copies in the negative control: each fails on its own most of the time; one must. */
const ATTEMPTS = 4;

/** `cp -r` of a data directory, without LOCK and readers/ (a restore never keeps them). */
function copyDir(src: string): string {
  const dst = join(tmp(), 'copy');
  execFileSync('cp', ['-r', src, dst]);
  rmSync(join(dst, 'LOCK'), { force: true });
  rmSync(join(dst, 'readers'), { recursive: true, force: true });
  return dst;
}

/**
 * A plain copy of a live directory, file by file with `cp`, taking as long as copying a large directory would
 * (files `gapMs` apart): the copy any file-level tool makes without the server's cooperation. Not one quick
 * `cp -r`: this directory is small, and such a copy mostly lands between two checkpoints, where it is as good as a
 * crash image (0 of 6 failed when tried), so it would prove nothing about the checks.
 */
async function plainCopy(src: string, gapMs: number): Promise<string> {
  const dst = join(tmp(), 'copy');
  mkdirSync(dst);
  for (const name of readdirSync(src).sort()) {
    if (name === 'LOCK' || name === 'readers') continue;
    try {
      execFileSync('cp', ['-r', join(src, name), dst], { stdio: 'pipe' });
    } catch (err) {
      if (existsSync(join(src, name))) throw err; // else gone since the listing: a temporary file
    }
    await sleep(gapMs);
  }
  return dst;
}

/** Waits until every thread of `pid` is stopped (SIGSTOP is delivered asynchronously). */
async function stopped(pid: number): Promise<void> {
  const state = (task: string) => /\) (\S)/.exec(readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8'))?.[1];
  for (let i = 0; i < 500; i++) {
    if (readdirSync(`/proc/${pid}/task`).every((t) => state(t) === 'T')) return;
    await sleep(2);
  }
  throw new Error(`powdb-server ${pid} did not stop`);
}

function summary(r: CheckResult): string {
  return r.ok ? 'ok' : r.failures.slice(0, 3).join('; ');
}

describe('the online workload and its checks', () => {
  it('reject plain copies of the live directory (negative control)', { timeout: 180_000 }, async () => {
    const server = await startPowdbServer({ users: [APP] });
    const load = await startWorkload(server, APP, { bigValues: true });
    await sleep(1000);
    const copies: { dir: string; window: FreezeWindow }[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      const startMs = Date.now();
      const dir = await plainCopy(server.dataDir, 300);
      copies.push({ dir, window: { startMs, endMs: Date.now() } });
    }
    const log = await load.stop();
    const results: CheckResult[] = [];
    for (const c of copies) results.push(await checkRestored(c.dir, log, c.window, { quiet: true }));
    const failed = results.filter((r) => !r.ok).length;
    const verifyOnly = results.filter((r) => !r.ok && r.failures.every((f) => f.startsWith('powdb-cli verify'))).length;
    const verifyClean = results.filter((r) => !r.failures.some((f) => f.startsWith('powdb-cli verify'))).length;
    console.log(
      `[workload] seed ${log.seed}: ${failed} of ${results.length} plain copies failed the checks ` +
        `(verify was clean on ${verifyClean}; ${verifyOnly} caught by verify alone)`,
    );
    results.forEach((r, i) => console.log(`  copy ${i + 1}: ${summary(r)}`));
    expect(failed, `seed ${log.seed}: the checks passed every plain copy of a live directory`).toBeGreaterThan(0);
  });

  it(
    'pass a copy of a server stopped cleanly after the workload (positive control)',
    { timeout: 120_000 },
    async () => {
      const server = await startPowdbServer({ users: [APP] });
      const load = await startWorkload(server, APP, { bigValues: true, ddl: true });
      await sleep(3000);
      const log = await load.stop();
      const startMs = Date.now();
      await server.stop(); // SIGTERM: drains and checkpoints
      const window = { startMs, endMs: Date.now() };
      const r = await checkRestored(copyDir(server.dataDir), log, window);
      expect(r.failures, `seed ${log.seed}`).toEqual([]);
      expect(r.ok).toBe(true);
      // Not vacuous: rows were written and acknowledged, and transfers both committed and rolled back.
      expect(r.prefixes.filter((p) => p.name.startsWith('writer')).every((p) => p.lo > 0 && p.k >= p.lo)).toBe(true);
      expect(log.transfers.committed).toBeGreaterThan(0);
      expect(log.transfers.rolled_back).toBeGreaterThan(0);
      expect(log.ddl.ops.length).toBeGreaterThan(0);
    },
  );

  it(
    'pass a crash image copied while the server is paused (SIGSTOP), and only for its window',
    { timeout: 120_000 },
    async () => {
      const server = await startPowdbServer({ users: [APP] });
      const load = await startWorkload(server, APP, { bigValues: true, ddl: true });
      await sleep(2000);
      const startMs = Date.now();
      server.pause();
      await stopped(server.pid);
      const dir = copyDir(server.dataDir);
      server.resume();
      const window = { startMs, endMs: Date.now() };
      await sleep(1000); // the workload goes on after the image
      const log = await load.stop();
      // The checks open (and write to) what they check: the controls below each get their own copy.
      const [early, late] = [copyDir(dir), copyDir(dir)];
      const r = await checkRestored(dir, log, window);
      expect(r.failures, `seed ${log.seed}`).toEqual([]);
      expect(r.prefixes.filter((p) => p.name.startsWith('writer')).every((p) => p.lo > 0)).toBe(true);

      // Not blind to the window: the same image checked as if taken after the workload lost acknowledged rows,
      // and as if taken a second before the pause holds rows not yet sent then.
      const after = { startMs: log.stopped_unix_ms + 1, endMs: log.stopped_unix_ms + 1 };
      const lost = await checkRestored(late, log, after, { quiet: true });
      expect(lost.failures.some((f) => /acknowledged before the freeze began \(lost\)/.test(f))).toBe(true);
      const before = { startMs: startMs - 1000, endMs: startMs - 1000 };
      const unsent = await checkRestored(early, log, before, { quiet: true });
      expect(unsent.failures.some((f) => /sent before the freeze ended/.test(f))).toBe(true);
    },
  );
});
