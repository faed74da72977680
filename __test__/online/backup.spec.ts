// Online backup of a busy powdb-server 0.29.0, end to end through the CLI: a
// seeded concurrent workload (appenders with a sequence each, transfers that
// keep a sum, rollbacks, failing statements, values over 4 KiB, DDL) runs
// through full and incremental backups, into a backup directory and into a
// repository; each backup is restored and checked against the workload's log
// (./restored.ts): every row acknowledged before the freeze, nothing sent
// after it, the sum exact, verify clean, writes after the restore survive a
// kill -9. The checks' own negative controls are in workload.spec.ts; the
// stage's (no window check, a freeze the server rolled back) in stage.spec.ts.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, reference, tmp } from '../helpers.js';
import { startPowdbServer, type PowdbServer, type User } from '../powdb-server.js';
import { checkRestored, startWorkload, type FreezeWindow, type RunLog } from './workload.js';
import { envFor, freshPrefix, s3Targets } from '../s3/targets.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const BACKUP: User = { name: 'backup', role: 'readwrite', password: 'backup-pw' };
const READER: User = { name: 'reader', role: 'readonly', password: 'reader-pw' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

interface Online {
  freeze_ms: number;
  frozen_at: string;
  attempts: number;
  pages_recopied: string | number;
  finalize: 'engine' | 'redo';
}

/** The CLI with the backup login's password in the environment; resolves to its --json output. */
async function cli(
  args: string[],
  user = BACKUP,
  extraEnv: Record<string, string> = {},
): Promise<Record<string, unknown> & { online?: Online }> {
  const env = { ...process.env, ...extraEnv, POWDB_SERVER_PASSWORD: user.password };
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], { env, maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

/** The CLI, expected to fail: its exit code and stderr. */
async function refused(args: string[], user = BACKUP): Promise<{ code: number; stderr: string }> {
  const env = { ...process.env, POWDB_SERVER_PASSWORD: user.password };
  try {
    await run(process.execPath, [CLI, ...args], { env });
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  throw new Error(`powdb-backup ${args.join(' ')} succeeded`);
}

const serverArgs = (server: PowdbServer) => ['--server', `${server.host}:${server.port}`, '--server-user', BACKUP.name];
const windowOf = (o: Online): FreezeWindow => {
  const startMs = Date.parse(o.frozen_at);
  return { startMs, endMs: startMs + Math.ceil(o.freeze_ms) + 1 };
};

/** Restores with `restoreArgs` into a new directory and checks it against the workload's log. */
async function expectExact(
  restoreArgs: string[],
  log: RunLog,
  online: Online,
  extraEnv: Record<string, string> = {},
): Promise<void> {
  const window = windowOf(online);
  // Not blind: writers were busy on both sides of the freeze, so a copy off by
  // one moment (or a freeze that held nothing) would show in the checks.
  const acked = log.writers.flatMap((w) => w.rows.map((r) => r[2])).filter((t): t is number => t !== null);
  expect(acked.some((t) => t < window.startMs) && acked.some((t) => t > window.endMs)).toBe(true);
  const dest = join(tmp(), 'restored');
  await cli(['restore', ...restoreArgs, dest], BACKUP, extraEnv);
  const result = await checkRestored(dest, log, window);
  expect(result.failures, `workload seed ${result.seed}`).toEqual([]);
  expect(online.freeze_ms, 'the write freeze').toBeLessThan(2000);
}

describe('online backup of a busy server', () => {
  it('full and incremental backups into directories restore exactly', { timeout: 240_000 }, async () => {
    const server = await startPowdbServer({ users: [APP, BACKUP] });
    const load = await startWorkload(server, APP, { bigValues: true });
    await sleep(1500);
    const full = join(tmp(), 'full');
    const first = await cli(['backup', server.dataDir, full, ...serverArgs(server)]);
    await sleep(1000);
    const inc = join(tmp(), 'inc');
    const second = await cli(['backup', server.dataDir, inc, '--base', full, ...serverArgs(server)]);
    await sleep(300);
    const log = await load.stop();
    await expectExact([full], log, first.online!);
    await expectExact([full, '--apply', inc], log, second.online!);
    // The reference crate restores the online chain as well (the same format as an offline one).
    const byReference = join(tmp(), 'by-reference');
    reference('new', 'restore', full, byReference, '--apply', inc);
    const result = await checkRestored(byReference, log, windowOf(second.online!));
    expect(result.failures, `workload seed ${result.seed}`).toEqual([]);
  });

  it(
    'copies recovered by our redo (no index file kept) restore exactly, in a chain and a repository',
    { timeout: 240_000 },
    async () => {
      const server = await startPowdbServer({ users: [APP, BACKUP] });
      const repo = join(tmp(), 'repo');
      await cli(['init', repo]);
      const load = await startWorkload(server, APP, { bigValues: true });
      await sleep(1500);
      const redo = [...serverArgs(server), '--finalize', 'redo'];
      const full = join(tmp(), 'full');
      const first = await cli(['backup', server.dataDir, full, ...redo]);
      await sleep(800);
      const inc = join(tmp(), 'inc');
      const second = await cli(['backup', server.dataDir, inc, '--base', full, ...redo]);
      const third = await cli(['backup', server.dataDir, '--repo', repo, ...redo]);
      await sleep(300);
      const log = await load.stop();
      for (const o of [first.online!, second.online!, third.online!]) expect(o.finalize).toBe('redo');
      // checkRestored opens each restore with the engine, which rebuilds the indexes and checks them.
      await expectExact([full], log, first.online!);
      await expectExact([full, '--apply', inc], log, second.online!);
      await expectExact(['--repo', repo], log, third.online!);
    },
  );

  it('backups into a repository, with DDL under way, restore exactly', { timeout: 240_000 }, async () => {
    const server = await startPowdbServer({ users: [APP, BACKUP] });
    const repo = join(tmp(), 'repo');
    await cli(['init', repo]);
    const load = await startWorkload(server, APP, { ddl: true });
    await sleep(1500);
    const first = await cli(['backup', server.dataDir, '--repo', repo, ...serverArgs(server)]);
    await sleep(1000);
    const second = await cli(['backup', server.dataDir, '--repo', repo, ...serverArgs(server)]);
    await sleep(300);
    const log = await load.stop();
    await expectExact(['--repo', repo, '--as-of', String(first.id)], log, first.online!);
    await expectExact(['--repo', repo], log, second.online!);
  });

  it('a backup into each S3 repository restores exactly', { timeout: 240_000 }, async () => {
    const server = await startPowdbServer({ users: [APP, BACKUP] });
    const load = await startWorkload(server, APP, { bigValues: true });
    await sleep(1000);
    const taken = [];
    for (const target of s3Targets()) {
      const url = freshPrefix(target, 'online');
      const env = envFor(target);
      await cli(['init', url], BACKUP, env);
      taken.push({
        url,
        env,
        record: await cli(['backup', server.dataDir, '--repo', url, ...serverArgs(server)], BACKUP, env),
      });
      await sleep(500);
    }
    const log = await load.stop();
    for (const { url, env, record } of taken) await expectExact(['--repo', url], log, record.online!, env);
  });

  it('without --server a live server is refused, saying how to back up online', { timeout: 60_000 }, async () => {
    const server = await startPowdbServer({ users: [BACKUP] });
    const r = await refused(['backup', server.dataDir, join(tmp(), 'b')]);
    expect(r.stderr).toContain('ERR_LOCKED');
    expect(r.stderr).toContain('--server <host:port>');
  });

  it('a readonly login is refused, naming the role the freeze needs', { timeout: 60_000 }, async () => {
    const server = await startPowdbServer({ users: [READER] });
    const args = ['backup', server.dataDir, join(tmp(), 'b'), '--server', `${server.host}:${server.port}`];
    const r = await refused([...args, '--server-user', READER.name], READER);
    expect(r.stderr).toContain('ERR_SERVER_ROLE');
    expect(r.stderr).toMatch(/readwrite/);
  });
});
