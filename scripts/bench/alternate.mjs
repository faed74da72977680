// The disk part's sampler. fsync-bound timings are bimodal on this disk, so
// each side runs `runs` times, the sides alternating (which goes first
// rotating every run), each sample after its preparation, a `sync` and a
// pause; and the two ceilings it compares ours with, as sides.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bin, catArgs, fresh, json, run, script, warm, work } from './kit.mjs';

/** disk.py: `run` (a sample with the child's /proc I/O counters), `times`, `cfr`. */
export const diskPy = (...args) => json('python3', [script('disk.py'), ...args]);
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Every file under `dir`, subdirectories included (a repository's packs and index). */
const treeFiles = (dir) =>
  readdirSync(dir, { recursive: true })
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
export const warmTree = (dir) => run('sh', catArgs(treeFiles(dir)));

/** Bytes the block device holding the bench's files has written since boot (whole machine). */
const blockDevice = () => run('findmnt', ['-no', 'SOURCE', '-T', work]).split('/').at(-1);
const deviceWritten = () =>
  Number(readFileSync(`/sys/class/block/${blockDevice()}/stat`, 'utf8').trim().split(/\s+/)[6]) * 512;

/**
 * Runs each of `sides` ({ name, argv | sample(), prepare?(), check?(), device? })
 * `runs` times, alternating, `pauseMs` after each `sync`; returns each side's
 * samples (disk.py run: secs, rss_kib and the child's /proc I/O counters; with
 * `device`, also `device_bytes`: what the device wrote during the run and a
 * `sync` after it, untimed). `check` runs after a side's first sample, untimed.
 */
export function alternate(sides, { runs, pauseMs }) {
  const samples = Object.fromEntries(sides.map((s) => [s.name, []]));
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < sides.length; i++) {
      const side = sides[(i + r) % sides.length];
      side.prepare?.();
      run('sync', []);
      pause(pauseMs);
      const written = deviceWritten();
      const sample = side.sample ? side.sample() : diskPy('run', ...side.argv);
      if (side.device) {
        run('sync', []); // untimed: what the run left dirty reaches the device too
        sample.device_bytes = deviceWritten() - written;
      }
      samples[side.name].push(sample);
      if (r === 0) side.check?.();
    }
  }
  return samples;
}

/** The copy ceiling, as a side of alternate(): `cp -r` of `from` to `to`, then `sync`. */
export const cpSyncSide = (from, to) => ({
  name: 'ceiling',
  argv: ['sh', '-c', 'cp -r -- "$0" "$1" && sync', from, to],
  prepare: () => (fresh(to), warm(from)),
});
/** The read ceiling: reading and BLAKE3-hashing `fileList` (tools/powdb-bench, Rust), the faster of 1 MiB reads on one core and mmap on all cores. */
export const readHashSide = (fileList, prepare) => ({
  name: 'ceiling',
  prepare,
  sample: () => {
    const one = diskPy('run', bin('powdb-bench'), 'hash', ...fileList);
    const all = diskPy('run', bin('powdb-bench'), 'hash', '--all-cores', ...fileList);
    return one.secs <= all.secs ? one : all;
  },
});
