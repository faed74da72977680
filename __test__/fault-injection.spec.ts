// Crash safety: backup and restore processes are killed with SIGKILL at every
// fsync/rename boundary and at random moments; afterwards no half-written
// backup or restore is ever accepted, the source is unchanged, and a rerun
// succeeds and cleans up what the dead process left.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, incrementalBackup, readManifest, restoreChain, verifyBackup, verifyChain } from '../index.js';
import { changedName } from '../lib/chain/manifest.js';
import { GENS, dataHashes, insertRows, makeDb, rejectsWith, tmp, type Gen } from './helpers.js';

const CHILD = join(import.meta.dirname, 'crash-child.mjs');
const RANDOM_RUNS = 20;

interface Run {
  exit: { code: number | null; signal: NodeJS.Signals | null };
  pid: number;
  ms: number;
}

async function runChild(args: string[], crashAt?: string, killAfterMs?: number): Promise<Run> {
  const env = { ...process.env, POWDB_BACKUP_CRASH_AT: crashAt ?? '' };
  const started = performance.now();
  const child = spawn(process.execPath, [CHILD, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  if (code !== 0 && signal !== 'SIGKILL') throw new Error(`child failed (${code}): ${stderr}`);
  return { exit: { code, signal }, pid: child.pid!, ms: performance.now() - started };
}

/** Crash points of one run: every boundary the operation passes, each once. */
function boundaries(files: number, withLock: boolean): string[] {
  return [
    ...(withLock ? ['lock-acquired:1'] : []),
    ...Array.from({ length: files }, (_, i) => `file-done:${i + 1}`),
    ...(withLock ? ['manifest-written:1'] : []),
    'staging-synced:1',
    'renamed:1',
  ];
}

/** Staging leftovers in `dir` are never accepted as backups. */
async function expectLeftoversRefused(dir: string): Promise<void> {
  for (const name of readdirSync(dir).filter((n) => n.startsWith('.powdb-partial-'))) {
    await rejectsWith(readManifest(join(dir, name)), 'ERR_NOT_A_BACKUP');
  }
}

function expectNoLeftovers(dir: string): void {
  expect(readdirSync(dir).filter((n) => n.startsWith('.powdb-partial-'))).toEqual([]);
}

/**
 * The source is unchanged but for a stale LOCK naming the killed process (or
 * empty: killed between creating LOCK and writing its PID, as the engine can be).
 */
function expectSourceUnchanged(data: string, before: Record<string, string>, deadPid: number): void {
  const now = dataHashes(data);
  expect(now).toEqual(before);
  if (existsSync(join(data, 'LOCK'))) {
    expect(['', String(deadPid)]).toContain(readFileSync(join(data, 'LOCK'), 'utf8').trim());
  }
}

async function sourceWithBase(gen: Gen) {
  const data = makeDb(gen, 3000, '--index');
  const base = join(tmp(), 'base');
  await fullBackup(data, base);
  insertRows(gen, data, 3000, 400);
  return { data, base, before: dataHashes(data) };
}

describe.each(GENS)('killed at any moment (engine %s)', (gen) => {
  it(`backups: at every boundary and ${RANDOM_RUNS} random moments`, async () => {
    const { data, base, before } = await sourceWithBase(gen);
    const files = readdirSync(data).filter((n) => !['wal.log', 'LOCK'].includes(n)).length;
    const root = tmp();
    const clean = await runChild(['full', data, join(root, 'timing')]);
    const plans: { op: 'full' | 'incr'; crashAt?: string; killAfterMs?: number }[] = [
      ...boundaries(files, true).map((crashAt) => ({ op: 'full' as const, crashAt })),
      ...boundaries(files, true).map((crashAt) => ({ op: 'incr' as const, crashAt })),
      ...Array.from({ length: RANDOM_RUNS }, (_, i) => ({
        op: i % 2 ? ('incr' as const) : ('full' as const),
        killAfterMs: Math.random() * clean.ms,
      })),
    ];

    let killed = 0;
    for (const [i, plan] of plans.entries()) {
      const dest = join(root, `b${i}`);
      const args = plan.op === 'full' ? ['full', data, dest] : ['incr', data, base, dest];
      const run = await runChild(args, plan.crashAt, plan.killAfterMs);
      if (run.exit.signal === 'SIGKILL') killed++;
      if (plan.crashAt) expect(run.exit.signal, plan.crashAt).toBe('SIGKILL');

      expectSourceUnchanged(data, before, run.pid);
      if (existsSync(dest)) {
        const report = plan.op === 'full' ? await verifyBackup(dest) : await verifyChain(base, [dest]);
        expect(report.errors, `${plan.op} ${plan.crashAt ?? plan.killAfterMs}`).toEqual([]);
      } else if (plan.crashAt === 'renamed:1') {
        throw new Error('a backup killed after its rename must be complete');
      }
      await expectLeftoversRefused(root);

      const rerun = join(root, `rerun${i}`);
      if (plan.op === 'full') await fullBackup(data, rerun);
      else await incrementalBackup(data, base, rerun);
      expectNoLeftovers(root);
      expect(existsSync(join(data, 'LOCK'))).toBe(false);
    }
    expect(plans.length).toBeGreaterThanOrEqual(25);
    expect(killed).toBeGreaterThanOrEqual(plans.length - RANDOM_RUNS);
  });

  it(`restores: at every boundary and ${RANDOM_RUNS} random moments`, async () => {
    const { data, base } = await sourceWithBase(gen);
    const inc = join(tmp(), 'inc');
    const m = await incrementalBackup(data, base, inc);
    const root = tmp();
    const expected = join(root, 'expected');
    await restoreChain(base, [inc], expected);
    const want = dataHashes(expected);
    const names = [...(await readManifest(base)).files.map((f) => f.name), ...m.changed.map(changedName)];
    const files = new Set(names).size;
    const clean = await runChild(['restore', base, join(root, 'timing'), inc]);
    const plans = [
      ...boundaries(files, false).map((crashAt) => ({ crashAt, killAfterMs: undefined })),
      ...Array.from({ length: RANDOM_RUNS }, () => ({ crashAt: undefined, killAfterMs: Math.random() * clean.ms })),
    ];

    for (const [i, plan] of plans.entries()) {
      const dest = join(root, `r${i}`);
      const run = await runChild(['restore', base, dest, inc], plan.crashAt, plan.killAfterMs);
      if (plan.crashAt) expect(run.exit.signal, plan.crashAt).toBe('SIGKILL');
      if (existsSync(dest)) expect(dataHashes(dest), `${plan.crashAt ?? plan.killAfterMs}`).toEqual(want);
      else if (plan.crashAt === 'renamed:1') throw new Error('a restore killed after its rename must be complete');

      const rerun = join(root, `again${i}`);
      await restoreChain(base, [inc], rerun);
      expect(dataHashes(rerun)).toEqual(want);
      expectNoLeftovers(root);
    }
    expect(plans.length).toBeGreaterThanOrEqual(25);
  });
});
