// --part archive: continuous archiving of a live, sync-enabled powdb-server
// 0.29.0 with writers busy. For each size: a copy of the pristine database,
// sync enabled on it (powdb-cli sync-enable, server stopped), a server with a
// readwrite login, the seeded workload tools/powdb-load busy on it, an online
// base backup into a fresh repository, then `archive --every <interval>
// --server` for a while. From the archiver's JSON rounds it reports what a
// crash of the server would lose (the recovery point): at any moment, what
// was committed after the newest round that had completed; the worst is the
// time from one round's request to the next round's end. The writers' worst
// wait for an answer tells what the rounds' checkpoints cost them.
import { execFile, spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { promisify } from 'node:util';
import { POWDB_VERSION, ensurePowdbServer } from '../powdb-server.mjs';
import { copyOf, fmt, fresh, median, ours, pristine, scratch } from './kit.mjs';
import { PASSWORD, USER, ensureLoad, envWith, startLoad, startServer, stopChild } from './online.mjs';

const execFileAsync = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs our CLI with the server's password in its environment; resolves to its last JSON document. */
async function cli(...args) {
  const [node, ...rest] = ours(...args, '--json');
  const env = envWith({ POWDB_SERVER_PASSWORD: PASSWORD });
  const { stdout } = await execFileAsync(node, rest, { encoding: 'utf8', maxBuffer: 1 << 26, env });
  return JSON.parse(stdout);
}

/** Runs `archive --every` for `ms`, then SIGTERM; resolves to its rounds. */
async function archiveFor(dataDir, repo, flags, everyMs, ms) {
  const [node, ...rest] = ours('archive', dataDir, '--repo', repo, '--every', `${everyMs}ms`, ...flags, '--json');
  const child = spawn(node, rest, { env: envWith({ POWDB_SERVER_PASSWORD: PASSWORD }) });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err = (err + c).slice(-8192)));
  await sleep(ms);
  const code = await stopChild(child, 'SIGTERM');
  if (code !== 0) throw new Error(`archive --every exited with ${code}: ${err}`);
  return out
    .split('\n')
    .filter((l) => l.startsWith('{"round"'))
    .map((l) => JSON.parse(l).round);
}

/** What a crash at the worst moment would lose, per round: from its request to the next round's end. */
function recoveryPoints(rounds) {
  const ends = rounds.map((r) => Date.parse(r.asked_at) + r.ms);
  return rounds.slice(0, -1).map((r, i) => (ends[i + 1] - Date.parse(r.asked_at)) / 1000);
}

async function benchArchive(mib, everyMs, seconds, bins) {
  const db = pristine(mib);
  const { at } = scratch(`archive-${mib}`);
  const dataDir = copyOf(db.dir, at('data'));
  chmodSync(dataDir, 0o700);
  await execFileAsync(bins.cli, ['--data-dir', dataDir, 'sync-enable'], { env: envWith({}) });
  let server;
  let load;
  try {
    server = await startServer(bins, dataDir, at);
    load = await startLoad(server.port, at, db.rows);
    const flags = ['--server', `127.0.0.1:${server.port}`, '--server-user', USER];
    fresh(at('repo'));
    await cli('init', at('repo'));
    await cli('backup', dataDir, '--repo', at('repo'), ...flags);
    // The same time without the archiver first: the workload's own rollbacks are checkpoints too.
    const quietFrom = Date.now();
    await sleep(seconds * 1000);
    const startedMs = Date.now();
    const rounds = await archiveFor(dataDir, at('repo'), flags, everyMs, seconds * 1000);
    const log = await load.stop();
    load = undefined;
    const waitsIn = (from, to) =>
      log.writers.flatMap((w) =>
        w.rows.filter((r) => r[2] !== null && r[1] >= from && r[1] < to).map((r) => r[2] - r[1]),
      );
    const waits = waitsIn(startedMs, Infinity);
    const before = waitsIn(quietFrom, startedMs);
    const failed = rounds.filter((r) => r.error).length;
    const points = recoveryPoints(rounds.filter((r) => !r.error));
    console.error(
      `archive ${mib} MiB every ${everyMs} ms: ${rounds.length} rounds (${failed} failed), round median ${median(rounds.map((r) => r.ms))} ms, recovery point worst ${fmt(Math.max(...points))} s`,
    );
    return {
      mib,
      everySecs: everyMs / 1000,
      rounds: rounds.length,
      failed,
      roundMedianMs: median(rounds.map((r) => r.ms)),
      roundWorstMs: Math.max(...rounds.map((r) => r.ms)),
      serverMedianMs: median(rounds.map((r) => r.server_ms)),
      pointMedianSecs: median(points),
      pointWorstSecs: Math.max(...points),
      writerWorstMs: Math.max(...waits),
      writerWorstBeforeMs: Math.max(...before),
    };
  } finally {
    await load?.kill();
    await server?.kill();
    fresh(at('data'));
    fresh(at('repo'));
  }
}

/** The archive part at each of `sizes`, archiving every second for 20 s (`seconds`); what archiveReport takes. */
export async function benchArchiveAll(sizes, seconds = 20) {
  await ensureLoad();
  const bins = await ensurePowdbServer();
  const all = [];
  for (const mib of sizes) all.push(await benchArchive(mib, 1000, seconds, bins));
  return all;
}

/** `all`: what benchArchiveAll returns; `m`: when and how it was measured. */
export function archiveReport(all, m) {
  const lines = [
    "| data | interval (s) | rounds (failed) | round, median (ms) | round, worst (ms) | of which the server, median (ms) | recovery point, median (s) | recovery point, worst (s) | writers' worst wait (ms) | the same without the archiver (ms) |",
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const s of all) {
    lines.push(
      `| ${s.mib} MiB | ${fmt(s.everySecs, 0)} | ${s.rounds} (${s.failed}) | ${s.roundMedianMs} | ${s.roundWorstMs} | ${s.serverMedianMs} | ${fmt(s.pointMedianSecs)} | ${fmt(s.pointWorstSecs)} | ${s.writerWorstMs} | ${s.writerWorstBeforeMs} |`,
    );
  }
  return `${m.measured} with ${m.how} against powdb-server ${POWDB_VERSION} (sync enabled on a copy of the database, started by the benchmark on 127.0.0.1, the same disk and cores) while \`powdb-load run\` keeps 3 autocommit writers and 2 transfer workers busy on it: an online base backup into a fresh repository, then \`archive --every 1s --server\` for 20 s. A round asks the server to archive (a checkpoint into a retained segment) and stores the new segments. The recovery point is what a crash of the server would lose at the worst moment of each round: from one round's request to the end of the next round. The writers' worst wait is the longest any write waited for its answer while the archiver ran (the server holds them during each round's checkpoint), beside the same over as long a time just before, without the archiver (the workload's rollbacks are checkpoints too).\n\n${lines.join('\n')}`;
}
