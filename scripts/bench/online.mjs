// --part online: an online backup of a live powdb-server 0.29.0 while writers
// are busy. For each size: a copy of the pristine database, a real server on
// it (built once by scripts/powdb-server.mjs) with a readwrite login, the
// seeded workload tools/powdb-load (`setup`, then `run` until SIGTERM) busy on
// it, with 2 more workers updating random rows of the database's largest table
// T (`run --hot T`), and `runs` online backups (`backup --server`, each into a
// fresh destination) timed whole, their write freeze read from the JSON; a
// backup that fails is counted with its error code, not retried. Then the
// server stops cleanly (SIGTERM) and the same directory is backed up offline
// `runs` times, for comparison.
//
// Waits are sized for 4 GiB: the server's open (every heap page checked, the
// index read) and its clean stop (a checkpoint) take minutes there, and every
// explicit rollback of the workload is a full checkpoint that answers nothing
// meanwhile.
//
// The server and the workload run beside this process, so every command goes
// through the event loop. Both are stopped whatever happens; if this process
// dies, the workload sees its stdin close and stops, and the server's
// watchdog (a shell holding a pipe from us) SIGKILLs it.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { promisify } from 'node:util';
import { ensurePowdbServer } from '../powdb-server.mjs';
import { bin, copyOf, fresh, lastLine, median, ours, pristine, root, scratch, script } from './kit.mjs';

const execFileAsync = promisify(execFile);
const LOAD = bin('powdb-load');
export const USER = 'bench';
export const PASSWORD = `bench-${process.pid}-${Date.now()}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** This environment without POWDB_* (a developer's settings must not leak in), plus `extra`. */
export const envWith = (extra) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWDB_'))),
  ...extra,
});

/** Builds powdb-load (release) unless it is there. */
export async function ensureLoad() {
  if (existsSync(LOAD)) return;
  console.error('building tools/powdb-load (cargo build --release -p powdb-load)...');
  await execFileAsync('cargo', ['build', '--release', '-p', 'powdb-load'], { cwd: root, maxBuffer: 1 << 26 });
}

/** How long the server may take to open the database, or to stop cleanly (a checkpoint). */
const SERVER_WAIT_MS = 900_000;
/** How long the workload's `setup` (two DDL statements, the accounts) may take on a server busy checkpointing. */
const SETUP_WAIT_MS = 900_000;
/**
 * The server's address space cap: 80% of the machine's memory. powdb-server
 * 0.29 holds about 11 GB for the 1 GiB database here (it keeps the heap and
 * its index in memory, twice over during a rollback's reopen).
 */
const SERVER_MAX_BYTES = Math.floor(totalmem() * 0.8);
/**
 * Row padding above 1 GiB, as in the disk part: powdb-server 0.29 opens no
 * index file over 512 MB ("btree file too large"), and the 4 GiB database of
 * default rows has a 1.6 GB one; rows padded with 240 bytes keep it near 440 MB.
 */
const ONLINE_PAD = 240;
const onlinePad = (mib) => (mib > 1024 ? ONLINE_PAD : undefined);
/** Workers updating rows of the largest table. */
const HOT_WORKERS = 2;

/** Waits until `child` has printed a line matching `re` on stdout (its text so far in `out()`), or fails. */
async function waitFor(child, re, what, ms = 60_000) {
  let text = '';
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr = (stderr + c).slice(-16 * 1024)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms / 1000} s: ${stderr}`)), ms);
    child.stdout.on('data', (c) => {
      text += c;
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before starting: ${stderr}`));
    });
  });
}

/** Sends `sig` to `child` and waits for it to exit (SIGKILL after `ms`, 30 s by default); resolves to its exit code. */
export function stopChild(child, sig, signal = (s) => child.kill(s), ms = 30_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => signal('SIGKILL'), ms);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    signal(sig);
  });
}

// Starts "$@" (the server) with its output in $log and prints its pid, its
// address space capped at $SERVER_MAX_KIB (SERVER_MAX_BYTES: on a shared machine,
// a server too big for it fails alone rather than the kernel's OOM killer
// picking a process); when its
// stdin (a pipe from this process) ends, because this process went away, it
// SIGKILLs the server. Exits with the server's status.
const WATCHDOG = `
log=$1; shift
ulimit -v "$SERVER_MAX_KIB"
exec 3<&0
"$@" </dev/null 3<&- >"$log" 2>&1 &
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

/** Adds the login, starts powdb-server on `dataDir` and waits for its port; `stop()` is SIGTERM (a clean shutdown). */
export async function startServer(bins, dataDir, at) {
  await execFileAsync(bins.cli, ['--data-dir', dataDir, 'useradd', USER, '--role', 'readwrite'], {
    env: envWith({ POWDB_NEW_PASSWORD: PASSWORD }),
  });
  const portFile = at('server.port');
  const log = at('server.log');
  const args = ['--data-dir', dataDir, '--port', '0', '--port-file', portFile, '--bind', '127.0.0.1'];
  // A clean stop drains requests queued behind a checkpoint (minutes at 4 GiB), then checkpoints.
  args.push('--shutdown-timeout', String(SERVER_WAIT_MS / 1000));
  const child = spawn('sh', ['-c', WATCHDOG, 'watchdog', log, bins.server, ...args], {
    env: envWith({
      POWDB_ADMIN_USER: 'admin',
      POWDB_ADMIN_PASSWORD: `admin-${PASSWORD}`,
      SERVER_MAX_KIB: String(Math.floor(SERVER_MAX_BYTES / 1024)),
    }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => {});
  const pid = Number((await waitFor(child, /^pid=(\d+)$/m, 'powdb-server'))[1]);
  const signal = (sig) => {
    try {
      process.kill(pid, sig);
    } catch {}
  };
  const server = {
    port: 0,
    async stop() {
      const code = await stopChild(child, 'SIGTERM', signal, SERVER_WAIT_MS);
      child.stdin.end();
      if (code !== 0) throw new Error(`powdb-server exited with ${code}: ${readFileSync(log, 'utf8').slice(-4096)}`);
    },
    async kill() {
      await stopChild(child, 'SIGKILL', signal);
      child.stdin.end();
    },
  };
  const deadline = Date.now() + SERVER_WAIT_MS;
  while (Date.now() < deadline && child.exitCode === null) {
    const found = existsSync(portFile) && /^port=(\d+)$/m.exec(readFileSync(portFile, 'utf8'));
    if (found) {
      server.port = Number(found[1]);
      return server;
    }
    await sleep(25);
  }
  await server.kill();
  const text = existsSync(log) ? readFileSync(log, 'utf8').slice(-4096) : '';
  throw new Error(`powdb-server did not start on ${dataDir}:\n${text}`);
}

/**
 * Creates the workload's schema on the server, then runs it until `stop()`: 3
 * writers and 2 transfer workers on its own tables, and HOT_WORKERS updating
 * rows of T (ids 0..rows-1, the whole of the database's largest table).
 */
export async function startLoad(port, at, rows) {
  const env = envWith({ POWDB_LOAD_PASSWORD: PASSWORD });
  // Requests wait for the server's answer as long as a checkpoint of the largest database may take.
  const login = ['--host', '127.0.0.1', '--port', String(port), '--user', USER, '--io-timeout-ms', '600000'];
  await execFileAsync(LOAD, ['setup', ...login], { env, timeout: SETUP_WAIT_MS });
  const hot = ['--hot', 'T', '--hot-key', 'id', '--hot-column', 'score', '--hot-rows', String(rows)];
  // stdin is a pipe the tool watches: if this process dies, the tool stops.
  const args = [
    'run',
    ...login,
    ...hot,
    '--hot-workers',
    String(HOT_WORKERS),
    '--log',
    at('load.json'),
    '--watch-stdin',
  ];
  const child = spawn(LOAD, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  try {
    await waitFor(child, /"event":"started"/, 'powdb-load run', SETUP_WAIT_MS);
  } catch (err) {
    await stopChild(child, 'SIGKILL');
    throw err;
  }
  return {
    async stop() {
      // A stop waits for requests in flight (up to the tool's grace) and writes the log.
      const code = await stopChild(child, 'SIGTERM', undefined, 120_000);
      if (code !== 0) throw new Error(`powdb-load run ended with ${code}`);
      return JSON.parse(readFileSync(at('load.json'), 'utf8'));
    },
    kill: () => stopChild(child, 'SIGKILL'),
  };
}

/**
 * One backup with our CLI (`extra`: the --server flags), timed whole with its peak RSS; resolves to its JSON, seconds
 * and RSS (KiB). A failed backup rejects with its JSON output as `stdout`.
 */
async function backup(dataDir, dest, extra = [], env = process.env) {
  fresh(dest);
  const out = `${dest}.json`;
  const started = performance.now();
  try {
    const { stdout } = await execFileAsync(
      'python3',
      [script('measure.py'), '--stdout-to', out, ...ours('backup', dataDir, dest, ...extra, '--json')],
      { encoding: 'utf8', maxBuffer: 1 << 26, env },
    );
    const secs = (performance.now() - started) / 1000;
    return { result: JSON.parse(readFileSync(out, 'utf8')), secs, rssKib: JSON.parse(stdout).rss_kib };
  } catch (err) {
    err.stdout = existsSync(out) ? readFileSync(out, 'utf8') : '';
    throw err;
  } finally {
    fresh(dest);
    fresh(out);
  }
}

async function benchOnline(mib, runs, bins) {
  const db = pristine(mib, onlinePad(mib));
  const { at } = scratch(`online-${mib}`);
  const dataDir = copyOf(db.dir, at('data'));
  chmodSync(dataDir, 0o700);
  const online = [];
  const offline = [];
  let server;
  let load;
  try {
    server = await startServer(bins, dataDir, at);
    load = await startLoad(server.port, at, db.rows);
    const flags = ['--server', `127.0.0.1:${server.port}`, '--server-user', USER];
    const env = envWith({ POWDB_SERVER_PASSWORD: PASSWORD });
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      let outcome;
      try {
        outcome = await backup(dataDir, at('online-dest'), flags, env);
      } catch (err) {
        // A failed backup is a result: its code (e.g. ERR_FREEZE_BUDGET), its time, its longest freeze if it said.
        const secs = (performance.now() - started) / 1000;
        const code = /"code": "([A-Z_]+)"/.exec(String(err.stdout))?.[1] ?? 'failed';
        fresh(at('online-dest'));
        online.push({ secs, failed: code });
        console.error(`online ${mib} MiB run ${i + 1}: failed after ${secs.toFixed(2)} s: ${lastLine(err)}`);
        continue;
      }
      const { result, secs, rssKib } = outcome;
      const o = result.online;
      if (!o) throw new Error(`backup --server printed no online report: ${JSON.stringify(result)}`);
      const refreshed = o.refreshed_under_freeze;
      // The kept freeze ends the stage: what follows is recovery, verification and storing.
      const frozenAfter = (Date.parse(o.frozen_at) - (performance.timeOrigin + started)) / 1000;
      online.push({
        secs,
        freezeMs: o.freeze_ms,
        longestMs: o.longest_freeze_ms,
        attempts: o.attempts,
        refreshed,
        rssMiB: rssKib / 1024,
        finalize: o.finalize,
      });
      console.error(
        `online ${mib} MiB run ${i + 1}: ${secs.toFixed(2)} s (kept freeze at ${frozenAfter.toFixed(1)} s), freeze ${o.freeze_ms.toFixed(1)} ms (longest ${o.longest_freeze_ms.toFixed(1)}), ${o.attempts} attempt(s), finalized by ${o.finalize}, peak RSS ${(rssKib / 1024).toFixed(0)} MiB${refreshed ? ', changed heaps re-read under the freeze' : ''}${o.retries.length ? `; retried: ${o.retries.join('; ')}` : ''}`,
      );
    }
    const stopped = await load.stop();
    load = undefined;
    console.error(
      `online ${mib} MiB workload: ${stopped.writers.reduce((n, w) => n + w.rows.length, 0)} appends, ${stopped.transfers.committed} transfers committed, ${stopped.transfers.rolled_back} rolled back, ${stopped.hot_updates} updates of T; errors ${JSON.stringify(stopped.errors)}`,
    );
    await server.stop();
    server = undefined;
    for (let i = 0; i < runs; i++) offline.push((await backup(dataDir, at('offline-dest'))).secs);
    return { mib, online, offline };
  } finally {
    await load?.kill();
    await server?.kill();
    fresh(at('data'));
  }
}

/** The online part at each of `sizes`; what onlineReport takes. */
export async function benchOnlineAll(sizes, runs) {
  await ensureLoad();
  const bins = await ensurePowdbServer();
  const all = [];
  for (const mib of sizes) all.push(await benchOnline(mib, runs, bins));
  return all.map((s) => {
    const pad = onlinePad(s.mib);
    const ok = s.online.filter((r) => !r.failed);
    return {
      mib: s.mib,
      pad,
      runs: s.online.length,
      failed: s.online.filter((r) => r.failed).map((r) => r.failed),
      freezeMedian: ok.length ? median(ok.map((r) => r.freezeMs)) : NaN,
      freezeWorst: ok.length ? Math.max(...ok.map((r) => r.longestMs)) : NaN,
      onlineSecs: ok.length ? median(ok.map((r) => r.secs)) : NaN,
      offlineSecs: median(s.offline),
      attempts: s.online.map((r) => (r.failed ? r.failed : `${r.attempts}${r.refreshed ? 'r' : ''}`)),
      rssMiB: ok.length ? Math.max(...ok.map((r) => r.rssMiB)) : NaN,
      finalize: [...new Set(ok.map((r) => r.finalize))].join(', ') || '-',
    };
  });
}
