// Randomized differential test: a seeded random workload on the real engine
// (every kind of change: inserts, in-place and relocating updates, deletes,
// overflow rows, tables created, dropped and re-created, indexes, alter
// table, sweep), an increment after every round, then every prefix of the
// chain restored and compared with what the source held at that moment. The
// same moments also go into a format-2 repository (encrypted for odd seeds):
// every backup restored from it, and again after an expire has pruned the
// older half, must equal a full backup of its moment.
// POWDB_SEEDS ("1,2" or "1-50") and POWDB_ROUNDS widen it (scripts/randomized.mjs).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, incrementalBackup, restoreChain, verifyChain } from '../index.js';
import { GENS, dataHashes, dump, fixture, reference, tmp, type Gen } from './helpers.js';

function seedList(spec: string): number[] {
  return spec.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

const SEEDS = seedList(process.env.POWDB_SEEDS ?? '11,12');
const ROUNDS = Number(process.env.POWDB_ROUNDS ?? 4);
const OPS = Number(process.env.POWDB_OPS ?? 10);
/** The round whose repository backup is a full one: an expire keeps it and what follows. */
const MIDDLE = Math.ceil(ROUNDS / 2);

interface Moment {
  dir: string; // the increment (or, for round 0, the full backup)
  snapshot: string; // a full backup taken at the same moment
  dump: Record<string, unknown>;
  ops: string[];
}

async function runSeed(gen: Gen, seed: number): Promise<void> {
  const root = tmp();
  const data = join(root, 'data');
  fixture(gen, 'create', data, '--rows', 300 + (seed % 7) * 50, '--index');
  const full = join(root, 'full');
  await fullBackup(data, full);
  const repo = await PackedRepository.init(join(root, 'repo'), {
    ...(seed % 2 ? { encrypt: true, password: `pw-${seed}`, kdf: { mKib: 64, t: 1, p: 1 } } : {}),
  });
  const ids = [(await repo.backup(data)).id];
  const moments: Moment[] = [{ dir: full, snapshot: full, dump: dump(gen, data), ops: ['create'] }];
  for (let round = 1; round <= ROUNDS; round++) {
    const { ops } = fixture(gen, 'workload', data, '--seed', seed * 1000 + round, '--ops', OPS);
    const inc = join(root, `inc${round}`);
    await incrementalBackup(data, [full, ...moments.slice(1).map((m) => m.dir)], inc);
    const snapshot = join(root, `snap${round}`);
    await fullBackup(data, snapshot);
    ids.push((await repo.backup(data, { type: round === MIDDLE ? 'full' : 'incr' })).id);
    moments.push({ dir: inc, snapshot, dump: dump(gen, data), ops });
  }
  for (let k = 0; k < moments.length; k++) {
    const increments = moments.slice(1, k + 1).map((m) => m.dir);
    const context = `seed ${seed} (${gen}), after round ${k}; operations so far:\n${moments
      .slice(0, k + 1)
      .map((m, i) => `  round ${i}: ${m.ops.join('; ')}`)
      .join('\n')}`;
    const dest = join(root, `restore${k}`);
    await restoreChain(full, increments, dest);
    expect(dataHashes(dest), context).toEqual(dataHashes(moments[k]!.snapshot));
    // The newest prefix is also compared page by page with the (stopped) source itself.
    const last = k === moments.length - 1;
    const report = await verifyChain(full, increments, last ? { source: data } : {});
    expect(report.errors, context).toEqual([]);
    expect(dump(gen, dest), context).toEqual(moments[k]!.dump);
    if (gen === 'new') {
      // The reference crate restores our chains to the same rows.
      const theirs = join(root, `reference${k}`);
      reference(gen, 'restore', full, theirs, ...increments.flatMap((d) => ['--apply', d]));
      expect(dump(gen, theirs), `${context}\n(restored by the reference crate)`).toEqual(moments[k]!.dump);
    }
  }
  const fromRepo = async (k: number, when: string) => {
    const dest = join(root, `repo-${when}-${k}`);
    await repo.restore(dest, { asOf: ids[k] });
    const context = `seed ${seed} (${gen}), repository backup of round ${k} (${when})`;
    expect(dataHashes(dest), context).toEqual(dataHashes(moments[k]!.snapshot));
  };
  for (let k = 0; k < moments.length; k++) await fromRepo(k, 'before expire');
  const expired = await repo.expire({ retainFull: 1 });
  expect(expired.kept).toEqual(ids.slice(MIDDLE));
  for (let k = MIDDLE; k < moments.length; k++) await fromRepo(k, 'after expire');
  expect(
    (await repo.verify()).every((v) => v.report.ok),
    `seed ${seed} (${gen}) after expire`,
  ).toBe(true);
  repo.close();
}

describe.each(GENS)('randomized workload, chain restore of every prefix (engine %s)', (gen) => {
  it.each(SEEDS)(
    'seed %i',
    async (seed) => {
      await runSeed(gen, seed);
    },
    600_000,
  );
});
