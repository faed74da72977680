// A real powdb-server 0.29.0 on 127.0.0.1 for a test, started from the
// binaries __test__/online/global-setup.ts installs (scripts/powdb-server.mjs):
//
//   const server = await startPowdbServer({ users: [{ name: 'app', role: 'readwrite', password: 'pw' }] });
//   await server.query('app', 'pw', 'type T { required unique id: int }');
//   ... server.login('app', 'pw') for the native client ...
//
// Every server started in a test is SIGKILLed after it and its directory
// removed (afterEach; a server stopped by the test keeps its data directory
// until then), and a small `sh` watchdog between this process and the server
// SIGKILLs it and removes its directory when this process goes away in any
// way, even by SIGKILL: no server outlives its test run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, inject } from 'vitest';
import type { PowdbBinaries } from '../scripts/powdb-server.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    powdb: PowdbBinaries;
  }
}

export type Role = 'admin' | 'readwrite' | 'readonly';

export interface User {
  name: string;
  role: Role;
  password: string;
}

export interface StartOptions {
  /** Logins made with `powdb-cli useradd` before the server starts. */
  users?: User[];
  /** Extra environment for the server, e.g. POWDB_TX_MAX_LIFETIME_MS. */
  env?: Record<string, string>;
  /** Serve this existing data directory (e.g. a restored copy; left in place) instead of a new one. */
  dataDir?: string;
  /** `powdb-cli sync-enable` before the server starts: it then keeps its WAL history in retained segments. */
  sync?: boolean;
  /** Listen on this port (default: one the system picks), e.g. to restart a server where clients expect it. */
  port?: number;
}

/** What a finished powdb-cli run printed. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** performance.now() when its first output arrived (or when it exited, if it printed nothing). */
  answeredAt: number;
  /** performance.now() when it exited. */
  endedAt: number;
}

/** A powdb-cli run under way. */
export interface RunningCli {
  /** Its first output on stdout: the statement's answer (its --format json line). */
  answered: Promise<{ stdout: string; at: number }>;
  done: Promise<CliRun>;
}

export interface PowdbServer {
  host: '127.0.0.1';
  port: number;
  dataDir: string;
  /** The admin login made from POWDB_ADMIN_USER / POWDB_ADMIN_PASSWORD. */
  admin: { user: string; password: string };
  /** The server's process id (for signals). */
  pid: number;
  /** Connection options for the native client. */
  login(user: string, password: string): { host: string; port: number; user: string; password: string };
  /** Runs one PowQL statement with powdb-cli; resolves to its JSON answer, rejects with its error. */
  query(user: string, password: string, powql: string): Promise<unknown>;
  /** Runs one PowQL statement with powdb-cli; resolves however it ends. */
  run(user: string, password: string, powql: string): Promise<CliRun>;
  /**
   * Starts one PowQL statement with powdb-cli. Its answer can arrive well
   * before it exits: after the statement, `powdb-cli --exec` sends `rollback`
   * to learn whether the script left a transaction open, and that `rollback`
   * needs the server's write gate, so it waits for a freeze like a writer.
   */
  start(user: string, password: string, powql: string): RunningCli;
  /** SIGTERM (a clean shutdown: drain, checkpoint) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Closes the watchdog's pipe, as this process dying would: the watchdog kills the server and removes its directory. */
  abandon(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that accepts connections and answers nothing. */
  pause(): void;
  resume(): void;
  /** The tail of the server's log. */
  log(): string;
}

const READY_TIMEOUT_MS = 30_000;
const CLI_TIMEOUT_MS = 60_000;

/** The installed binaries (provided by the global setup). */
export function powdbBinaries(): PowdbBinaries {
  const bins = inject('powdb');
  if (!bins) throw new Error('no powdb binaries: is __test__/online/global-setup.ts in vitest.config.ts globalSetup?');
  return bins;
}

// The watchdog: starts "$@" (the server) in the background and prints its
// pid. When its stdin (a pipe from this process) reaches EOF, because this
// process went away in any way (or abandon()), it marks <dir> abandoned,
// SIGKILLs the server, and once the server is gone removes <dir>. When the
// server exits otherwise (stop(), kill()), the watchdog exits with its status
// and leaves <dir> to the test (removed after it).
const WATCHDOG = `
dir=$1; shift
exec 3<&0
"$@" </dev/null 3<&- 2>&1 &
pid=$!
echo "pid=$pid"
( read -r _ <&3; : > "$dir/.abandoned"; kill -9 "$pid" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$pid"
code=$?
kill "$watcher" 2>/dev/null
[ -e "$dir/.abandoned" ] && rm -rf -- "$dir"
exit "$code"
`;

const live = new Set<PowdbServer>();
const scratch: string[] = [];
afterEach(async () => {
  await Promise.all([...live].map((s) => s.kill()));
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs powdb-cli with `input` on stdin, killed after CLI_TIMEOUT_MS. */
function startCli(cli: string, args: string[], input: string, env?: NodeJS.ProcessEnv): RunningCli {
  const child = spawn(cli, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? cliEnv() });
  let stdout = '';
  let stderr = '';
  let answeredAt = 0;
  let answer!: (a: { stdout: string; at: number }) => void;
  const answered = new Promise<{ stdout: string; at: number }>((r) => (answer = r));
  child.stdout.on('data', (c) => {
    stdout += c;
    if (!answeredAt) answer({ stdout, at: (answeredAt = performance.now()) });
  });
  child.stderr.on('data', (c) => (stderr += c));
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  const timer = setTimeout(() => {
    stderr += `\n(killed after ${CLI_TIMEOUT_MS} ms)`;
    child.kill('SIGKILL');
  }, CLI_TIMEOUT_MS);
  const done = new Promise<CliRun>((resolve) => {
    child.on('error', (e) => (stderr += e.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      const endedAt = performance.now();
      if (!answeredAt) answer({ stdout, at: (answeredAt = endedAt) });
      resolve({ code, stdout, stderr, answeredAt, endedAt });
    });
  });
  return { answered, done };
}

/** This environment without POWDB_* (a developer's settings must not leak into the tests). */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWDB_')));
  return { ...env, NO_COLOR: '1', ...extra };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Makes a data directory (mode 0700) with `users`, starts a server on it and waits until it listens. */
export async function startPowdbServer(options: StartOptions = {}): Promise<PowdbServer> {
  const { server: serverBin, cli } = powdbBinaries();
  const base = mkdtempSync(join(tmpdir(), 'powdb-online-'));
  scratch.push(base);
  const dataDir = options.dataDir ?? join(base, 'data');
  const portFile = join(base, 'data.port');
  if (!options.dataDir) mkdirSync(dataDir, { mode: 0o700 });
  for (const u of options.users ?? []) {
    const r = await startCli(
      cli,
      ['--data-dir', dataDir, 'useradd', u.name, '--role', u.role],
      '',
      cliEnv({ POWDB_NEW_PASSWORD: u.password }),
    ).done;
    if (r.code !== 0) {
      throw new Error(`powdb-cli useradd ${u.name} failed (${r.code}): ${r.stderr}`);
    }
  }
  if (options.sync) {
    // sync-enable opens an existing catalog: a read makes one.
    for (const args of [['--exec', 'schema'], ['sync-enable']]) {
      const r = await startCli(cli, ['--data-dir', dataDir, ...args], '', cliEnv()).done;
      if (r.code !== 0) throw new Error(`powdb-cli ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    }
  }
  const admin = { user: 'admin', password: `admin-${process.pid}-${Date.now()}` };
  const args = [
    '--data-dir',
    dataDir,
    '--port',
    String(options.port ?? 0),
    '--port-file',
    portFile,
    '--bind',
    '127.0.0.1',
  ];
  const child = spawn('sh', ['-c', WATCHDOG, 'watchdog', base, serverBin, ...args], {
    env: cliEnv({ POWDB_ADMIN_USER: admin.user, POWDB_ADMIN_PASSWORD: admin.password, ...options.env }),
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: a terminal's Ctrl-C reaches the test runner, which then closes our pipe
  });
  let log = '';
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-64 * 1024));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.stdin.on('error', () => {});
  let exit: string | null = null;
  const exited = new Promise<void>((r) =>
    child.once('close', (code, signal) => {
      exit = signal ?? String(code);
      r();
    }),
  );

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let pid = 0;
  let port = 0;
  while (Date.now() < deadline && exit === null) {
    pid ||= Number(/^pid=(\d+)$/m.exec(log)?.[1] ?? 0);
    const found = existsSync(portFile) && /^port=(\d+)$/m.exec(readFileSync(portFile, 'utf8'));
    if (pid && found) {
      port = Number(found[1]);
      break;
    }
    await sleep(25);
  }
  if (!port) {
    child.stdin.end();
    await exited;
    throw new Error(
      `powdb-server did not start (${exit === null ? `no port file after ${READY_TIMEOUT_MS} ms` : `exited: ${exit}`}):\n${log}`,
    );
  }

  const signal = (sig: NodeJS.Signals) => {
    if (exit !== null) return;
    try {
      process.kill(pid, sig);
    } catch {}
  };
  const ended = async (sig: NodeJS.Signals) => {
    signal(sig);
    signal('SIGCONT'); // a paused server acts on the signal only once it runs
    await exited;
    child.stdin.end(); // the watchdog's watcher
    live.delete(server);
  };
  const start = (user: string, password: string, powql: string) =>
    startCli(
      cli,
      ['--remote', `127.0.0.1:${port}`, '--user', user, '--password-stdin', '--format', 'json', '--exec', powql],
      password,
    );
  const run = (user: string, password: string, powql: string) => start(user, password, powql).done;
  const server: PowdbServer = {
    host: '127.0.0.1',
    port,
    dataDir,
    admin,
    pid,
    login: (user, password) => ({ host: '127.0.0.1', port, user, password }),
    run,
    start,
    async query(user, password, powql) {
      const r = await run(user, password, powql);
      if (r.code !== 0) throw new Error(`powdb-cli \`${powql}\` as ${user} failed (${r.code}): ${r.stderr.trim()}`);
      return JSON.parse(r.stdout);
    },
    stop: () => ended('SIGTERM'),
    kill: () => ended('SIGKILL'),
    async abandon() {
      child.stdin.end();
      await exited;
      live.delete(server);
    },
    pause: () => signal('SIGSTOP'),
    resume: () => signal('SIGCONT'),
    log: () => log,
  };
  live.add(server);
  return server;
}
