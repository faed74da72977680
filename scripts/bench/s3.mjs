// --part s3: object storage, on a SeaweedFS server on 127.0.0.1 against
// rclone. For each run: a full backup of the data directory into a fresh
// `s3://` prefix (a plain repository, default compression) against `rclone
// copy` uploading the same directory to another fresh prefix, the restore of
// that backup against `rclone copy` downloading that upload, and an increment
// after inserting 1% more rows (into a copy) against the full backup. Ours and
// rclone's runs alternate, which goes first swapping every run.
// Commands go through the event loop while the server runs (s3kit.mjs).
import { join } from 'node:path';
import { ensureRclone } from '../s3/rclone.mjs';
import { randomCredentials, startSeaweed } from '../s3/servers.mjs';
import {
  bin,
  bytesOf,
  catArgs,
  files,
  fmt,
  fresh,
  growArgs,
  lastLine,
  median,
  ours,
  pristine,
  sameNames,
  scratch,
  summary,
} from './kit.mjs';
import { environments, jsonAsync, oursAsync, runAsync, sampleAsync as sample } from './s3kit.mjs';

const warmAsync = (dir) => runAsync('sh', catArgs(files(dir)));
async function copyOfAsync(src, dest) {
  fresh(dest);
  await runAsync('cp', ['-a', src, dest]);
  return dest;
}
/** Throws unless `got` holds the files of `want`, byte-identical (exceptWal: our restore leaves out `wal.log`; rclone copies it). */
async function sameFiles(want, got, who, { exceptWal = false } = {}) {
  for (const name of sameNames(want, got, who, exceptWal)) await runAsync('cmp', [join(want, name), join(got, name)]);
}

/** Run `r` of one size: adds to `samples` and `stored`, and prints its seconds. */
async function oneRun(c, r) {
  const { mib, server, env, data, changed, out, endpoint, samples, stored } = c;
  const prefix = `${mib}mib-run${r}`;
  const repo = `s3://${server.bucket}/${prefix}/ours`;
  const remote = `bench:${server.bucket}/${prefix}/rclone`;
  const rcloneCopy = (from, to, ...flags) => [c.rclone, 'copy', from, to, '--transfers', '4', ...flags];
  const timed = async (key, argv, environment, prepare) => samples[key].push(await sample(argv, environment, prepare));
  const inTurn = async (a, b) => {
    for (const step of r % 2 === 0 ? [a, b] : [b, a]) await step();
  };
  await oursAsync(env.ours, 'init', repo, ...endpoint); // untimed
  await inTurn(
    () => timed('backup', ours('backup', data, '--repo', repo, ...endpoint), env.ours, () => warmAsync(data)),
    () => timed('upload', rcloneCopy(data, remote, '--s3-no-check-bucket'), env.rclone, () => warmAsync(data)),
  );
  await inTurn(
    async () => {
      await timed('restore', ours('restore', '--repo', repo, out, ...endpoint), env.ours, () => fresh(out));
      await sameFiles(data, out, 'our restore from S3', { exceptWal: true });
      fresh(out);
    },
    async () => {
      // Then `sync`: our restore is durable when it ends (every file fsynced), rclone's is not.
      const durably = ['sh', '-c', '"$0" "$@" && sync', ...rcloneCopy(remote, out)];
      await timed('download', durably, env.rclone, () => fresh(out));
      await sameFiles(data, out, 'rclone download');
      fresh(out);
    },
  );
  if (!c.skipped) {
    const argv = ours('backup', changed, '--repo', repo, '--same-database', ...endpoint);
    await timed('increment', argv, env.ours, () => warmAsync(changed));
  }
  const { backups } = JSON.parse(await oursAsync(env.ours, 'info', '--repo', repo, ...endpoint, '--json'));
  stored.full.push(Number(backups[0].stored_bytes));
  if (!c.skipped) stored.increment.push(Number(backups[1].stored_bytes));
  // Each run's seconds on stderr: the medians hide how much fsync-bound samples swing.
  const last = (k) => (samples[k].length ? fmt(samples[k].at(-1).secs) : '-');
  console.error(
    `s3 ${mib} MiB run ${r + 1}: backup ${last('backup')} upload ${last('upload')} restore ${last('restore')} download ${last('download')} increment ${last('increment')}`,
  );
}

async function benchS3(mib, server, rclone, runs) {
  const db = pristine(mib);
  const { dir, at } = scratch(`s3-${mib}`);
  const data = await copyOfAsync(db.dir, at('data'));
  const dataBytes = bytesOf(data);
  // +1% rows into the indexed table, on a copy (as the repo part does).
  const changed = await copyOfAsync(db.dir, at('changed'));
  let skipped;
  try {
    await jsonAsync(bin('powdb-fixture'), [...growArgs(changed, db), '--gen', 'new']);
  } catch (err) {
    skipped = lastLine(err); // see grow() in kit.mjs
  }
  const samples = { backup: [], upload: [], restore: [], download: [], increment: [] };
  const stored = { full: [], increment: [] };
  const endpoint = ['--endpoint', server.endpoint];
  const env = environments(server);
  const c = { mib, server, rclone, env, endpoint, data, changed, skipped, out: at('out'), samples, stored };
  for (let r = 0; r < runs; r++) await oneRun(c, r);
  fresh(dir);
  return {
    mib,
    dataBytes,
    backup: summary(samples.backup),
    upload: summary(samples.upload),
    restore: summary(samples.restore),
    download: summary(samples.download),
    increment: skipped ? undefined : summary(samples.increment),
    stored: { full: median(stored.full), increment: skipped ? undefined : median(stored.increment) },
    skipped,
  };
}

/** Starts SeaweedFS, runs benchS3 for each size, and stops the server, also on failure. */
export async function benchS3All(sizes, runs) {
  // Any database to create is made before the server runs (not forEach(pristine): the index would be the padding).
  sizes.forEach((mib) => pristine(mib));
  const rclone = await ensureRclone();
  const started = performance.now();
  const server = await startSeaweed({ bucket: 'powdb-bench', ...randomCredentials() });
  console.error(
    `s3: SeaweedFS at ${server.endpoint} (up in ${fmt((performance.now() - started) / 1000, 1)} s), rclone ${rclone}`,
  );
  try {
    const all = [];
    for (const mib of sizes) all.push(await benchS3(mib, server, rclone, runs));
    return all;
  } catch (err) {
    const log = server.log().trim().split('\n').slice(-20).join('\n');
    err.message += `\n--- the last lines of the SeaweedFS log ---\n${log}`;
    throw err;
  } finally {
    await server.stop();
  }
}
