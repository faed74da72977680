// Continuous archiving from a live, sync-enabled powdb-server 0.29.0
// (`archive --every --server`), with the seeded concurrent workload busy: an
// online base backup (sync-enabled databases back up online too), then the
// archiver's rounds; a restore to the LSN one round saw holds exactly what
// the workload had committed by then (./restored.ts), which the base backup
// alone does not (the negative control). Also: the archiver stops cleanly on
// SIGTERM, refuses a directory without sync (and enables nothing), fails at
// once on a wrong login, and warns once about a value sync cannot archive.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, tmp } from '../helpers.js';
import { startPowdbServer, type PowdbServer, type User } from '../powdb-server.js';
import { checkRestored, startWorkload } from './workload.js';

const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };
const BACKUP: User = { name: 'backup', role: 'readwrite', password: 'backup-pw' };
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = (password = BACKUP.password) => ({ ...process.env, POWDB_SERVER_PASSWORD: password });
const serverArgs = (server: PowdbServer) => ['--server', `${server.host}:${server.port}`, '--server-user', BACKUP.name];

interface Round {
  round: number;
  asked_at: string;
  server_lsn?: string;
  archived_through?: string;
  behind_lsn?: string;
  archived: unknown[];
  error?: { code: string; message: string };
  ms: number;
}

/** The CLI's --json output. */
async function cli(args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], { env: env(), maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

/** `archive --every` running beside the test: its rounds as they come, and its end. */
interface Archiver {
  rounds: Round[];
  stderr(): string;
  /** Resolves once `n` rounds have ended. */
  roundsDone(n: number, ms?: number): Promise<void>;
  /** SIGTERM, then its exit code and the summary it printed. */
  stop(): Promise<{ code: number | null; stopped: any }>;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
});

function startArchiver(args: string[], password = BACKUP.password): Archiver {
  const child = spawn(process.execPath, [CLI, 'archive', ...args, '--json'], { env: env(password) });
  children.add(child);
  const rounds: Round[] = [];
  const docs: any[] = [];
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => {
    out += c;
    for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (!line.startsWith('{"')) continue; // a failure's --json document is pretty-printed; stderr says it
      const doc = JSON.parse(line);
      docs.push(doc);
      if (doc.round) rounds.push(doc.round);
    }
  });
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return {
    rounds,
    stderr: () => err,
    exited,
    async roundsDone(n, ms = 60_000) {
      const until = Date.now() + ms;
      while (rounds.length < n) {
        if (Date.now() > until) throw new Error(`${rounds.length} of ${n} rounds after ${ms} ms: ${err}`);
        if (child.exitCode !== null) throw new Error(`archive exited (${child.exitCode}): ${err}`);
        await sleep(50);
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      children.delete(child);
      return { code, stopped: docs.find((d) => d.stopped)?.stopped };
    },
  };
}

describe('continuous archiving from a live server', () => {
  it('bounds the recovery point of a busy sync-enabled server to one round', async () => {
    const server = await startPowdbServer({ users: [APP, BACKUP], sync: true });
    const repo = join(tmp(), 'repo');
    await cli(['init', repo]);
    const load = await startWorkload(server, APP, { seed: Number(process.env.ONLINE_SEED ?? Date.now() % 1e9) });
    await sleep(800);
    const base = await cli(['backup', server.dataDir, '--repo', repo, ...serverArgs(server)]);
    expect(base.online.freeze_ms).toBeLessThan(2000);
    // The online base belongs to the live directory's sync lineage, so the archive continues it.
    const identity = JSON.parse(readFileSync(join(server.dataDir, '.powdb-sync', 'identity.json'), 'utf8'));
    const info = await cli(['info', '--repo', repo]);
    expect(JSON.stringify(info)).toContain(identity.database_id);
    // So does a backup directory in the reference format: its manifest carries the sync block.
    const dirBackup = join(tmp(), 'dir-backup');
    const { manifest } = await cli(['backup', server.dataDir, dirBackup, ...serverArgs(server)]);
    expect(manifest.sync.identity.database_id).toBe(identity.database_id);
    expect(String(manifest.sync.source_lsn)).toBe(String(manifest.source_lsn));
    expect((await cli(['verify', dirBackup])).ok).toBe(true);

    const archiver = startArchiver([server.dataDir, '--repo', repo, '--every', '1s', ...serverArgs(server)]);
    await archiver.roundsDone(4);
    const log = await load.stop();
    const { code, stopped } = await archiver.stop();
    expect(code, archiver.stderr()).toBe(0);
    expect(stopped.rounds).toBe(archiver.rounds.length);
    expect(archiver.rounds.filter((r) => r.error)).toEqual([]);

    // A round in the middle of the load: writers were busy before and after it.
    const round = archiver.rounds[2]!;
    expect(Number(round.behind_lsn)).toBe(0); // the server archived everything it had written when asked
    const startMs = Date.parse(round.asked_at);
    const window = { startMs, endMs: startMs + round.ms + 1 };
    const acked = log.writers.flatMap((w) => w.rows.map((r) => r[2])).filter((t): t is number => t !== null);
    expect(acked.some((t) => t < window.startMs) && acked.some((t) => t > window.endMs)).toBe(true);

    const dest = join(tmp(), 'pitr');
    await cli(['restore', '--repo', repo, '--as-of', String(round.server_lsn), dest]);
    const result = await checkRestored(dest, log, window);
    expect(result.failures, `workload seed ${result.seed}`).toEqual([]);

    // Negative control: the base backup alone lacks what the round archived.
    const baseOnly = join(tmp(), 'base-only');
    await cli(['restore', '--repo', repo, '--as-of', base.id, baseOnly]);
    const blind = await checkRestored(baseOnly, log, window, { quiet: true });
    expect(blind.failures.length, 'the base backup alone must miss rows acknowledged before the round').toBeGreaterThan(
      0,
    );
  }, 240_000);

  it('goes on through a server restart, and the archive then holds everything the server committed', async () => {
    const first = await startPowdbServer({ users: [APP, BACKUP], sync: true });
    const repo = join(tmp(), 'repo');
    await cli(['init', repo]);
    await first.query(APP.name, APP.password, 'type T { required unique id: int }');
    await cli(['backup', first.dataDir, '--repo', repo, ...serverArgs(first)]);
    const archiver = startArchiver([first.dataDir, '--repo', repo, '--every', '1s', ...serverArgs(first)]);
    await first.query(APP.name, APP.password, 'insert T { id := 1 }');
    await archiver.roundsDone(2);
    await first.query(APP.name, APP.password, 'insert T { id := 2 }');
    await first.stop(); // a clean shutdown archives its WAL into a segment
    const down = archiver.rounds.length;
    await archiver.roundsDone(down + 1);
    const second = await startPowdbServer({ dataDir: first.dataDir, sync: false, port: first.port });
    await second.query(APP.name, APP.password, 'insert T { id := 3 }');
    const back = archiver.rounds.length;
    await archiver.roundsDone(back + 2);
    const { code, stopped } = await archiver.stop();
    expect(code, archiver.stderr()).toBe(0);
    // The rounds while it was down failed and said why; the first one after it came back did not.
    expect(archiver.rounds[down]!.error?.code).toMatch(/^ERR_SERVER_/);
    expect(archiver.rounds.at(-1)!.error).toBeUndefined();
    expect(stopped.failed_rounds).toBeGreaterThan(0);
    const last = archiver.rounds.at(-1)!;
    const dest = join(tmp(), 'pitr');
    await cli(['restore', '--repo', repo, '--as-of', String(last.server_lsn), dest]);
    const restored = await startPowdbServer({ dataDir: dest });
    const answer = (await restored.query(APP.name, APP.password, 'T { .id }')) as { rows: number[][] };
    expect(answer.rows.map((r) => r[0]).sort()).toEqual([1, 2, 3]);
  }, 120_000);

  it('refuses a directory without sync and enables nothing; a wrong login fails at once', async () => {
    const plain = await startPowdbServer({ users: [BACKUP] });
    const repo = join(tmp(), 'repo');
    await cli(['init', repo]);
    const refused = startArchiver([plain.dataDir, '--repo', repo, '--every', '1s', ...serverArgs(plain)]);
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toContain('ERR_NOT_SYNC_ENABLED');
    expect(refused.stderr()).toContain('never enables it on a live server');
    expect(existsSync(join(plain.dataDir, '.powdb-sync'))).toBe(false);

    const synced = await startPowdbServer({ users: [BACKUP], sync: true });
    const wrong = startArchiver([synced.dataDir, '--repo', repo, '--every', '1s', ...serverArgs(synced)], 'wrong');
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr()).toContain('ERR_SERVER_AUTH');
  }, 120_000);

  it('warns once about a value too large for sync to archive', async () => {
    const server = await startPowdbServer({ users: [APP, BACKUP], sync: true });
    await server.query(APP.name, APP.password, 'type Big { required unique id: int, v: str }');
    await server.query(APP.name, APP.password, `insert Big { id := 1, v := "${'x'.repeat(6000)}" }`);
    const repo = join(tmp(), 'repo');
    await cli(['init', repo]);
    const archiver = startArchiver([server.dataDir, '--repo', repo, '--every', '1s', ...serverArgs(server)]);
    await archiver.roundsDone(3);
    const { code } = await archiver.stop();
    expect(code, archiver.stderr()).toBe(0);
    const warnings = archiver.stderr().match(/holds a value too large to store inline/g) ?? [];
    expect(warnings, archiver.stderr()).toHaveLength(1);
    expect(archiver.stderr()).toMatch(/WAL record type 11 at LSN \d+/);
  }, 120_000);
});
