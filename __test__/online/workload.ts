// The randomized workload of the online-backup tests (tools/powdb-load) run
// against a real server from ../powdb-server.ts, and what its log says a
// restored copy must hold (checkRestored, in ./restored.ts):
//
//   const load = await startWorkload(server, APP, { bigValues: true });
//   ... take the backup; record Date.now() before its freeze began and after it ended ...
//   const log = await load.stop();
//   const result = await checkRestored(restoredDir, log, { startMs, endMs });
//
// The tool prints its seed at start and the log carries it; pass `seed` to
// replay the same choices (timing still differs from run to run).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { ROOT, tmp } from '../helpers.js';
import type { PowdbServer, User } from '../powdb-server.js';
import type { RunLog } from './restored.js';

export {
  checkRestored,
  expectedPad,
  type CheckResult,
  type FreezeWindow,
  type RunLog,
  type Stamp,
} from './restored.js';

export const LOAD = join(ROOT, 'target', 'release', 'powdb-load');

export interface WorkloadOptions {
  seed?: number;
  writers?: number;
  transfers?: number;
  /** One append in ten over 4 KiB (overflow pages). */
  bigValues?: boolean;
  /** A worker that creates, alters and drops tables. */
  ddl?: boolean;
  accounts?: number;
}

export interface Workload {
  seed: number;
  /** Stops the run (SIGTERM) and reads its log; throws if the tool failed. */
  stop(): Promise<RunLog>;
}

const live = new Set<ChildProcess>();
afterEach(() => {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
});

function loginArgs(server: PowdbServer, user: User): string[] {
  return ['--host', server.host, '--port', String(server.port), '--user', user.name];
}

/** Creates the schema (Log, Acct) on `server`, then runs the workload until stop(). */
export async function startWorkload(server: PowdbServer, user: User, options: WorkloadOptions = {}): Promise<Workload> {
  const env = { ...process.env, POWDB_LOAD_PASSWORD: user.password };
  const accounts = String(options.accounts ?? 16);
  execFileSync(LOAD, ['setup', ...loginArgs(server, user), '--accounts', accounts], { env, timeout: 30_000 });
  const logFile = join(tmp(), 'run.json');
  const args = ['run', ...loginArgs(server, user), '--log', logFile, '--watch-stdin'];
  args.push('--writers', String(options.writers ?? 3), '--transfers', String(options.transfers ?? 2));
  if (options.seed !== undefined) args.push('--seed', String(options.seed));
  if (options.bigValues) args.push('--big-values');
  if (options.ddl) args.push('--ddl');
  // stdin is a pipe the tool watches: if this process dies, the tool stops.
  const child = spawn(LOAD, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  let timer: NodeJS.Timeout | undefined;
  const started = await new Promise<{ seed: number }>((resolve, reject) => {
    child.stdout.on('data', (c) => {
      stdout += c;
      const line = stdout.split('\n').find((l) => l.includes('"event":"started"'));
      if (line) resolve(JSON.parse(line));
    });
    void exited.then((code) => reject(new Error(`powdb-load run exited (${code}) before starting: ${stderr}`)));
    timer = setTimeout(() => reject(new Error(`powdb-load did not start within 30 s: ${stderr}`)), 30_000);
  }).finally(() => clearTimeout(timer));
  return {
    seed: started.seed,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      live.delete(child);
      if (code !== 0) throw new Error(`powdb-load run (seed ${started.seed}) ended with ${code}: ${stderr}`);
      return JSON.parse(readFileSync(logFile, 'utf8')) as RunLog;
    },
  };
}
