// Backups in parallel (issue 27): N processes back up into one repository at
// once, on a local directory and on each S3 server, while random ones are
// SIGKILLed (seeded: POWDB_TEST_SEED repeats a run) and expires start among
// them, one failing at once and one waiting (--lock-wait). Then every backup
// published verifies and restores to the bytes of its source, and nothing an
// expire pruned is missing. Half of the sources are copies of one database
// whose older backup the expire removes, so that their backups deduplicate
// against chunks a prune would remove if it ran beside them.
import { spawn } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackedRepository } from '../../index.js';
import { CLI, dataHashes, insertRows, makeDb, tmp } from '../helpers.js';
import { envFor, freshPrefix, s3Targets } from './targets.js';

const seed = Number(process.env.POWDB_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`parallel writers: seed ${seed} (POWDB_TEST_SEED=${seed} repeats this run)`);

/** mulberry32: a small seeded generator, so that a failing run can be repeated. */
function random(from: number): () => number {
  let a = from >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Place {
  name: string;
  location(): string;
  env: Record<string, string>;
}

const places: Place[] = [
  { name: 'a local directory', location: () => join(tmp(), 'repo'), env: {} },
  ...s3Targets().map((t) => ({ name: t.name, location: () => freshPrefix(t, 'parallel'), env: envFor(t) })),
];

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** The CLI in a process of its own; `killAfter` ms: SIGKILLed then (if still running). */
function start(place: Place, args: string[], killAfter?: number): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...place.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = killAfter === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfter);
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    }),
  );
}

describe.each(places.map((p) => [p.name, p] as const))('parallel writers on %s', (_name, place) => {
  it.each([4, 8])(
    '%i backups at once, some killed, expires among them: every published backup verifies and restores',
    async (n) => {
      Object.assign(process.env, place.env);
      const next = random(seed + n + place.name.length);
      const location = place.location();
      // The database whose older backup expire removes, and the sources: copies of it as it was (identical
      // content: their chunks are those of that older backup) and copies that then diverge.
      const original = makeDb('new', 2500, '--index');
      const repo = await PackedRepository.init(location);
      await repo.backup(original, { source: 'original', type: 'full' });
      const sources = Array.from({ length: n }, (_, i) => {
        const dir = join(tmp(), `source${i}`);
        cpSync(original, dir, { recursive: true });
        if (i % 2 === 1) insertRows('new', dir, 2500 + i * 100, 50);
        return dir;
      });
      insertRows('new', original, 2500, 300);
      await repo.backup(original, { source: 'original', type: 'full' });
      const expected = new Map([['original', dataHashes(original)]]);
      sources.forEach((dir, i) => expected.set(`w${i}`, dataHashes(dir)));

      const killed = new Set(Array.from({ length: n / 4 }, () => Math.floor(next() * n)));
      const backups = sources.map((dir, i) =>
        start(
          place,
          ['backup', dir, '--repo', location, '--source', `w${i}`, '--lock-wait', '2m'],
          killed.has(i) ? 100 + next() * 1500 : undefined,
        ),
      );
      // Among them: an expire that fails at once or runs alone, and one that waits for the backups.
      const expireArgs = ['expire', '--repo', location, '--retain-full', '1'];
      const early = new Promise((r) => setTimeout(r, next() * 800)).then(() => start(place, expireArgs));
      const waiting = new Promise((r) => setTimeout(r, next() * 800)).then(() =>
        start(place, [...expireArgs, '--lock-wait', '2m']),
      );
      const ran = await Promise.all(backups);
      const [once, waited] = await Promise.all([early, waiting]);
      console.log(
        `${place.name}, ${n} writers: killed ${[...killed].map((i) => `w${i} (${ran[i]!.signal ? 'mid-backup' : 'after it ended'})`).join(', ')}; ` +
          `the first expire ${once.code === 0 ? 'ran' : 'was refused'}`,
      );
      ran.forEach((r, i) => {
        if (!killed.has(i)) expect({ i, code: r.code, stderr: r.stderr }).toEqual({ i, code: 0, stderr: '' });
      });
      if (once.code !== 0) expect(once.stderr).toMatch(/ERR_REPO_LOCKED|in use by/);
      expect(waited).toMatchObject({ code: 0, stderr: '' });

      // A last expire prunes what killed writers left; then every backup restores to its source's bytes.
      const last = await start(place, expireArgs);
      expect(last).toMatchObject({ code: 0, stderr: '' });
      const reopened = await PackedRepository.open(location);
      const records = await reopened.list();
      const names = records.map((r) => r.source?.name);
      for (let i = 0; i < n; i++) if (!killed.has(i)) expect(names).toContain(`w${i}`);
      expect(names.filter((s) => s === 'original')).toHaveLength(1); // the older full went
      expect((await reopened.verify()).filter((v) => !v.report.ok)).toEqual([]);
      for (const record of records) {
        const dest = join(tmp(), `restored-${record.id}`);
        await reopened.restore(dest, { asOf: record.id });
        expect(dataHashes(dest), record.source?.name).toEqual(expected.get(record.source!.name!));
      }
      reopened.close();
      repo.close();
    },
    120_000,
  );
});
