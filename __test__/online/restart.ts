// A test's powdb-server started again on its data directory and on the same
// port, as an operator's restart would (a server configured with a port
// keeps it): clients that reconnect, such as the workload (./workload.ts)
// and a backup under way, find it where they left it. startPowdbServer
// (../powdb-server.ts) always asks for a new port, so this starts the binary
// itself, behind the same kind of watchdog: when this process goes away in
// any way, the restarted server is SIGKILLed. Every restarted server is
// SIGKILLed after its test; its data directory stays the original server's
// (removed after the test by ../powdb-server.ts).
//
//   await server.kill();                       // or server.stop()
//   const again = await restartOnSamePort(server);
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { tmp } from '../helpers.js';
import { powdbBinaries, type PowdbServer } from '../powdb-server.js';

export interface Restarted {
  pid: number;
  port: number;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (drain, checkpoint) and wait for the exit. */
  stop(): Promise<void>;
  log(): string;
}

// Starts "$@" with stdin from /dev/null and prints its pid; SIGKILLs it when
// our pipe (fd 3) reaches EOF; exits with its status.
const WATCHDOG = `
exec 3<&0
"$@" </dev/null 3<&- 2>&1 &
pid=$!
echo "pid=$pid"
( read -r _ <&3; kill -9 "$pid" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$pid"
code=$?
kill "$watcher" 2>/dev/null
exit "$code"
`;

const live = new Set<Restarted>();
afterEach(async () => {
  await Promise.all([...live].map((s) => s.kill()));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts powdb-server on `server`'s data directory and port, once `server` has been stopped or killed, with its
 * admin login and `env`; resolves once it listens. A port still held for a moment is tried again for 10 s.
 */
export async function restartOnSamePort(server: PowdbServer, env: Record<string, string> = {}): Promise<Restarted> {
  let lastLog = '';
  for (let deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(200)) {
    const started = await tryStart(server, env);
    if (typeof started !== 'string') return started;
    lastLog = started;
  }
  throw new Error(`powdb-server did not start again on port ${server.port}:\n${lastLog}`);
}

/** One start; the server's log when it exited before listening. */
async function tryStart(server: PowdbServer, env: Record<string, string>): Promise<Restarted | string> {
  const portFile = join(tmp(), 'restarted.port');
  const args = ['--data-dir', server.dataDir, '--port', String(server.port), '--port-file', portFile];
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWDB_')));
  const child = spawn('sh', ['-c', WATCHDOG, 'watchdog', powdbBinaries().server, ...args, '--bind', '127.0.0.1'], {
    env: {
      ...base,
      NO_COLOR: '1',
      POWDB_ADMIN_USER: server.admin.user,
      POWDB_ADMIN_PASSWORD: server.admin.password,
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let log = '';
  const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-64 * 1024));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.stdin.on('error', () => {});
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('close', () => {
      exited = true;
      r();
    }),
  );
  let pid = 0;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline && !exited; await sleep(25)) {
    pid ||= Number(/^pid=(\d+)$/m.exec(log)?.[1] ?? 0);
    if (pid && existsSync(portFile) && /^port=\d+$/m.test(readFileSync(portFile, 'utf8'))) break;
  }
  if (exited || !pid || !existsSync(portFile)) {
    child.stdin.end();
    await exit;
    return log;
  }
  const ended = async (signal: NodeJS.Signals) => {
    if (!exited) {
      try {
        process.kill(pid, signal);
        process.kill(pid, 'SIGCONT');
      } catch {}
    }
    await exit;
    child.stdin.end();
    live.delete(restarted);
  };
  const restarted: Restarted = {
    pid,
    port: server.port,
    kill: () => ended('SIGKILL'),
    stop: () => ended('SIGTERM'),
    log: () => log,
  };
  live.add(restarted);
  return restarted;
}
