// `npm run bench`: ours against the reference crate `powdb-backup` (0.29.0, on
// the same engine generation), on databases the real engine creates.
//
//   node scripts/bench.mjs [--sizes 64,1024] [--big] [--runs 3] [--part all|core|repo|s3|disk|online|archive|tables|peers|fleet] [--smoke] [--readme]
//
// --big adds 4096 MiB; --part picks the tables (core: against the reference;
// repo: format-2 repositories; s3: a repository on a local SeaweedFS against
// rclone; disk: ours as a percentage of the machine's ceilings, `cp -r` +
// `sync` and read + hash, CLI start-up and delta restore; at 1024 MiB unless
// --sizes is given; online: backups of a live powdb-server with writers busy,
// their write freeze and time against an offline backup; archive: continuous archiving of a live
// sync-enabled server, the recovery point it keeps and what its rounds cost writers; tables: restoring one table of
// about 1% of the data against a whole restore; peers: ours against restic, rustic, Kopia and borg, at 1 GiB
// unless --sizes is given, only those named by --peers restic,rustic,kopia,borg if given); --smoke runs 64 MiB once and checks that restores are
// correct, without judging times; --readme rewrites the tables of the parts
// that ran in docs/benchmarks.md (linked from the README).
//
// fleet: one repository for many databases, deduplication across sources and time against the number of backups.
//
// Each part is a module under scripts/bench/ (core, repo, s3, disk, online, archive, tables, peers, fleet); kit.mjs
// holds what they share, report.mjs the reports' text and the --readme rewrite.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { benchSize } from './bench/core.mjs';
import { benchDiskAll } from './bench/disk.mjs';
import { benchFleetAll } from './bench/fleet.mjs';
import { fmt } from './bench/kit.mjs';
import { benchOnlineAll } from './bench/online.mjs';
import { archiveReport, benchArchiveAll } from './bench/archive.mjs';
import { benchPeersAll, peersReport } from './bench/peers.mjs';
import { benchRepo } from './bench/repo.mjs';
import {
  coreReport,
  diskReport,
  fleetReport,
  onlineReport,
  repoReport,
  rewriteReadme,
  s3Report,
  tablesReport,
} from './bench/report.mjs';
import { benchTablesAll } from './bench/tables.mjs';
import { benchS3All } from './bench/s3.mjs';

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string' },
    big: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    smoke: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
    peers: { type: 'string' },
  },
});
const PARTS = ['core', 'repo', 's3', 'disk', 'online', 'archive', 'tables', 'peers', 'fleet'];
if (opts.part !== 'all' && !PARTS.includes(opts.part)) {
  console.error(`--part: one of all, ${PARTS.join(', ')} (not ${opts.part})`);
  process.exit(2);
}
const sizesOf = (list) => (opts.smoke ? [64] : [...list.split(',').map(Number), ...(opts.big ? [4096] : [])]);
const sizes = sizesOf(opts.sizes ?? '64,1024');
const diskSizes = sizesOf(opts.sizes ?? '1024'); // the disk part: 1 GiB unless told
const runs = opts.smoke ? 1 : Number(opts.runs);

const day = new Date().toISOString().slice(0, 10);
const machine = `${cpus().length} cores, ${cpus()[0]?.model.trim()}, Node ${process.version}`;
/** What a part's report says of its run: when, where, with which command. */
const method = (part, list = sizes) => ({
  measured: `Measured ${day} on ${machine}`,
  how: `\`node scripts/bench.mjs --sizes ${list.join(',')} --runs ${runs} --part ${part}\``,
  runs,
});

/** Runs a part; a smoke run says how long it took (its restores were checked on the way). */
async function timed(name, bench, checked = 'restores byte-identical') {
  const started = performance.now();
  const result = await bench();
  const took = (performance.now() - started) / 1000;
  if (opts.smoke) console.error(`${name}: the smoke run took ${fmt(took, 1)} s, ${checked}`);
  return result;
}

const part = (name) => opts.part === 'all' || opts.part === name;
const reports = {};
if (part('core'))
  reports.bench = coreReport(
    sizes.map((mib) => benchSize(mib, runs)),
    method('core'),
  );
if (part('repo'))
  reports['bench-repo'] = repoReport(
    sizes.map((mib) => benchRepo(mib, runs)),
    method('repo'),
  );
if (part('tables'))
  reports['bench-tables'] = tablesReport(
    await timed('tables', () => benchTablesAll(sizes, runs), 'the one-table restore equals the source table'),
    method('tables'),
  );
if (part('s3')) reports['bench-s3'] = s3Report(await timed('s3', () => benchS3All(sizes, runs)), method('s3'));
if (part('disk')) {
  const disk = await timed('disk', () => benchDiskAll(diskSizes, runs, opts.smoke));
  reports['bench-disk'] = diskReport(disk, method('disk', diskSizes));
}
if (part('online')) {
  const online = await timed('online', () => benchOnlineAll(sizes, runs), 'times not judged');
  reports['bench-online'] = onlineReport(online, method('online'));
  const worst = Math.max(...online.map((s) => s.freezeWorst));
  console.error(
    `online goal: freeze under 100 ms at every size: ${worst < 100 ? 'met' : 'not met'} (worst ${fmt(worst, 1)} ms)`,
  );
}
if (part('archive')) {
  const archive = await timed('archive', () => benchArchiveAll(sizes, opts.smoke ? 5 : 20), 'times not judged');
  reports['bench-archive'] = archiveReport(archive, method('archive'));
}
if (part('fleet')) {
  const fleet = await timed(
    'fleet',
    () => benchFleetAll(sizes, runs, opts.smoke),
    'the grown copy restores with every row',
  );
  reports['bench-fleet'] = fleetReport(fleet, method('fleet'));
}
// The peers are built from source (minutes, once) and compared at 1 GiB: not in a smoke run unless asked.
if (part('peers') && !(opts.smoke && opts.part === 'all')) {
  const only = opts.peers?.split(',');
  const peers = await timed('peers', () => benchPeersAll(diskSizes, runs, only), 'restores checked for size');
  const how = method('peers', diskSizes);
  reports['bench-peers'] = peersReport(
    peers,
    only ? { ...how, how: `${how.how.slice(0, -1)} --peers ${opts.peers}\`` } : how,
  );
}
for (const text of Object.values(reports)) console.log(`${text}\n`);
if (opts.smoke && part('core'))
  console.log('bench smoke: completed; the chain restore was opened by the engine with every row');
else if (opts.smoke) console.log('bench smoke: completed');
if (opts.readme) rewriteReadme(reports);
