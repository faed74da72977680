// Randomized differential test for point-in-time recovery: a seeded random
// workload on the real engine (0.29, sync on), with explicit transactions that
// commit, roll back or crash, archive runs and backups (incremental and full)
// in between; what the engine holds after each round is recorded with the LSN
// history had reached. Then every recorded moment is restored through the WAL
// archive (`restore --as-of <LSN>`) and the engine's dump of the restore must
// equal the recorded one; a few random LSNs (commits, and points inside
// transactions) must restore to the last commit point at or before them and
// open. A failure prints the seed, every round's operations and the LSN.
// POWDB_SEEDS ("1,2" or "1-50"), POWDB_ROUNDS and POWDB_OPS widen it, as for
// randomized.spec.ts; POWDB_PITR_SKIP overrides the kinds of op left out.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository } from '../index.js';
import {
  FIXTURE,
  dump,
  fixture,
  segments,
  syncEnable,
  tmp,
  transaction,
  type Segments,
  type TransactionOptions,
} from './helpers.js';

/** "1,2" or "1-50" (the same parsing as randomized.spec.ts). */
function seedList(spec: string): number[] {
  return spec.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

// Two seeds whose runs hold every event (crash, rollback, drop column, full and incremental backups mid-history,
// archive runs) and fail when the replay lets an uncommitted transaction in.
const SEEDS = seedList(process.env.POWDB_SEEDS ?? '3,31');
const ROUNDS = Number(process.env.POWDB_ROUNDS ?? 6);
const OPS = Number(process.env.POWDB_OPS ?? 12);
/**
 * Kinds of workload op left out (`workload --skip`): `alter table add column`, Int or Str. PowDB 0.29 does not
 * replay it exactly from a base taken before it once rows changed in between: the alter rewrites every row, a row
 * that grew out of its page moves to wherever the free-space map points (moves that are not logged), and the map
 * of the replaying open is not the live session's. The rows then sit elsewhere than where the records after the
 * alter say they are: the first open fails ("replay: row does not fit"), or it succeeds with rows missing or
 * too many (an insert whose slot is taken is skipped as already there; deletes and updates find other rows).
 * `replay.notes` warns about it; the test leaves it out. `drop column` only shrinks rows, in place, and replays
 * exactly: it stays in.
 */
const SKIP = process.env.POWDB_PITR_SKIP ?? 'add-column';
const skipArgs = SKIP ? ['--skip', SKIP] : [];

const GEN = 'new';
const BEGIN = 10;
const COMMIT = 4;
const ROLLBACK = 5;

/** SplitMix32-style PRNG for the test's own choices (the workload has its own, in the fixture). */
function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  return {
    /** Uniform in 0..n-1. */
    below: (n: number) => next() % n,
    chance: (percent: number) => next() % 100 < percent,
    pick: <T>(items: T[]) => items[next() % items.length]!,
  };
}

interface TableDump {
  count: number;
  rows_hash: string;
  schema: { name: string; type: string; required: boolean }[];
  indexes: string[];
  index_ok: boolean;
  index_problems: string[];
}
type Dump = Record<string, TableDump>;

interface Point {
  round: number;
  /** The newest LSN of the history when the round ended (what its last checkpoint archived). */
  lsn: bigint;
  dump: Dump;
}

interface Backup {
  id: string;
  lsn: bigint;
}

/** One archived WAL record, as `segments --units` lists it. */
interface Unit {
  lsn: bigint;
  tx_id: number;
  type: number;
}

/**
 * The point a replay to `target` stops at, from the records alone (powdb-sync.md, section 3): the last record
 * at or before it that commits a transaction or belongs to none (transaction 0, not Begin or Rollback), but
 * never before the base backup (`after`).
 */
function expectedCut(units: Unit[], after: bigint, target: bigint): bigint {
  let cut = after;
  for (const u of units) {
    if (u.lsn <= after || u.lsn > target) continue;
    if (u.type === COMMIT || (u.tx_id === 0 && u.type !== BEGIN && u.type !== ROLLBACK)) cut = u.lsn;
  }
  return cut;
}

/** What must match exactly: rows, schema and index health of every table. */
const rows = (d: Dump) =>
  Object.fromEntries(
    Object.entries(d).map(([name, t]) => [
      name,
      {
        count: t.count,
        rows_hash: t.rows_hash,
        schema: t.schema,
        index_ok: t.index_ok,
        index_problems: t.index_problems,
      },
    ]),
  );

/**
 * Index lists are not compared for equality: the WAL does not carry index creation (a create index writes no WAL
 * record), so an index created after the base backup, or on a table dropped and created again since, is not in the
 * restore (its `replay.notes` say so). Every index the restore has must exist in the source at that moment, and
 * every index must agree with the rows (`index_ok`, checked for every restore).
 */
function checkIndexes(restored: Dump, recorded: Dump, context: string) {
  for (const [name, t] of Object.entries(restored)) {
    const source = recorded[name]?.indexes ?? [];
    for (const index of t.indexes) expect(source, `${context}: index ${name}.${index}`).toContain(index);
  }
}

async function runSeed(seed: number): Promise<void> {
  const rng = prng(seed);
  const root = tmp();
  const data = join(root, 'data');
  fixture(GEN, 'create', data, '--rows', 200 + (seed % 5) * 60, '--index');
  syncEnable(data);
  const repo = await PackedRepository.init(join(root, 'repo'));
  const first = await repo.backup(data);
  const backups: Backup[] = [{ id: first.id, lsn: first.source_lsn }];
  const lastLsn = (fallback: bigint) => {
    const last = segments(data).last_lsn;
    return last === null ? fallback : BigInt(last);
  };
  const fixtureShape = JSON.stringify((dump(GEN, data) as Dump).T!.schema);
  const points: Point[] = [{ round: 0, lsn: first.source_lsn, dump: dump(GEN, data) as Dump }];
  const log: string[][] = [[`create, sync-enable, full backup ${first.id} at LSN ${first.source_lsn}`]];
  let nextId = 1_000_000;

  /** An explicit transaction on a random table of the fixture shape (made with `add-table` when none is left). */
  const tx = (round: string[], end: TransactionOptions['end']) => {
    const d = dump(GEN, data) as Dump;
    const tables = Object.keys(d).filter((n) => JSON.stringify(d[n]!.schema) === fixtureShape);
    if (tables.length === 0) {
      const name = `X${nextId}`;
      const n = rng.below(200);
      fixture(GEN, 'add-table', data, '--table', name, '--rows', n, ...(rng.chance(50) ? ['--index'] : []));
      round.push(`add-table ${name} with ${n} rows`);
      tables.push(name);
    }
    const opts: TransactionOptions = {
      table: rng.pick(tables),
      from: (nextId += 1000),
      count: rng.below(20),
      end,
      ...(rng.chance(60) ? { updateEvery: 1 + rng.below(9) } : {}),
      ...(rng.chance(40) ? { deleteEvery: 2 + rng.below(9) } : {}),
    };
    const r = transaction(data, opts);
    round.push(
      `tx ${JSON.stringify(opts)}: LSNs ${r.begin_lsn}-${r.last_lsn}, commit ${r.commit_lsn}, max_lsn after ${r.max_lsn}`,
    );
  };

  for (let round = 1; round <= ROUNDS; round++) {
    const ops: string[] = [];
    log.push(ops);
    const wseed = seed * 1000 + round;
    const workload = (s: number, n: number) => {
      const w = fixture(GEN, 'workload', data, '--seed', s, '--ops', n, ...skipArgs);
      ops.push(...(w.ops as string[]).map((o) => `workload --seed ${s}: ${o}`));
    };
    // Backups and archive runs come in the middle of a round, so that most recorded moments lie after the newest
    // backup: their restore replays the archive.
    workload(wseed, Math.ceil(OPS / 2));
    if (rng.chance(40)) {
      const a = await repo.archive(data);
      ops.push(`archive: ${a.archived.length} segment(s)`);
    }
    if (rng.chance(30)) {
      const type = rng.chance(40) ? 'full' : 'incr';
      const b = await repo.backup(data, { type });
      backups.push({ id: b.id, lsn: b.source_lsn });
      ops.push(`${type} backup ${b.id} at LSN ${b.source_lsn}`);
    }
    workload(wseed + 500, Math.floor(OPS / 2));
    if (rng.chance(70)) {
      const end = rng.pick<TransactionOptions['end']>(['commit', 'commit', 'rollback', 'crash']);
      tx(ops, end);
      if (end === 'crash') {
        // Whatever opens it next recovers it (sync-aware: its uncommitted tail goes into a segment first).
        const after = rng.below(3);
        if (after === 0) workload(wseed + 700, 2);
        else if (after === 1) tx(ops, 'commit');
        else ops.push('(the dump below is the next open)');
      }
    }
    // The dump first: after a crash it is the open that recovers (and archives the tail).
    const d = dump(GEN, data) as Dump;
    const lsn = lastLsn(points.at(-1)!.lsn);
    points.push({ round, lsn, dump: d });
    ops.push(`recorded at LSN ${lsn}`);
  }
  const final = await repo.archive(data);
  expect(final.gaps, `seed ${seed}: archive gaps`).toEqual([]);

  // `segments(data, true)`, with room for a long history (one JSON line of every record; execFileSync's default
  // buffer is 1 MiB).
  const history = JSON.parse(
    execFileSync(FIXTURE, ['segments', data, '--gen', GEN, '--units'], { encoding: 'utf8', maxBuffer: 1 << 30 }),
  ) as Segments;
  expect(history.contiguous, `seed ${seed}: retained segments contiguous`).toBe(true);
  const units: Unit[] = history.segments.flatMap((s) =>
    s.records!.map((u) => ({ lsn: BigInt(u.lsn), tx_id: u.tx_id, type: u.type })),
  );
  const describeRun = () =>
    `seed ${seed}, ${ROUNDS} rounds, ${OPS} ops per round (skip ${SKIP || 'nothing'}); what ran:\n${log
      .map((ops, i) => `  round ${i}:\n${ops.map((o) => `    ${o}`).join('\n')}`)
      .join('\n')}`;

  let restores = 0;
  let replayedUnits = 0n;
  /** Restores `target`, checks the base, the cut and that the engine opens it; returns the dump. */
  const restoreTo = async (target: bigint, what: string) => {
    const base = backups.filter((b) => b.lsn <= target).at(-1)!;
    const cut = expectedCut(units, base.lsn, target);
    const context = `${what}, LSN ${target} (base backup ${base.id} at LSN ${base.lsn}, expected cut ${cut})\n${describeRun()}`;
    const dest = join(root, `restore${++restores}`);
    const r = await repo.restore(dest, { asOf: target });
    const notes = r.replay?.notes.join('\n  ') ?? '(no replay)';
    const ctx = `${context}\nreplay notes:\n  ${notes}`;
    expect(r.sourceLsn, ctx).toBe(cut);
    // A target past the base replays (nothing, when no commit point lies between them); at the base, no replay.
    if (target > base.lsn) {
      expect(r.replay?.base, ctx).toBe(base.id);
      expect(r.replay?.cut_lsn, ctx).toBe(cut);
      expect(r.replay?.target_lsn, ctx).toBe(target);
    } else expect(r.replay, ctx).toBeUndefined();
    let restored: Dump;
    try {
      restored = dump(GEN, dest) as Dump;
    } catch (e) {
      throw new Error(`the engine does not open the restore: ${(e as Error).message}\n${ctx}`);
    }
    for (const [name, t] of Object.entries(restored)) expect(t.index_ok, `${ctx}\nindex of ${name}`).toBe(true);
    replayedUnits += r.replay?.units ?? 0n;
    return { restored, ctx };
  };

  for (const p of points) {
    const { restored, ctx } = await restoreTo(p.lsn, `recorded state after round ${p.round}`);
    expect(rows(restored), ctx).toEqual(rows(p.dump));
    checkIndexes(restored, p.dump, ctx);
  }

  // Random points of the archived history after the first backup: two Commit records, two records of any kind
  // (inside a transaction, or between a statement's row records and their Commits).
  const after = units.filter((u) => u.lsn > first.source_lsn);
  const commits = after.filter((u) => u.type === COMMIT);
  const targets = new Set<bigint>();
  for (let i = 0; i < 4 && after.length > 0; i++) {
    targets.add(i < 2 && commits.length > 0 ? rng.pick(commits).lsn : rng.pick(after).lsn);
  }
  for (const target of targets) {
    const { restored, ctx } = await restoreTo(target, 'random point');
    // Where the cut is that of a recorded moment, the rows are that moment's.
    const cut = expectedCut(units, 0n, target);
    const same = points.find((p) => expectedCut(units, 0n, p.lsn) === cut);
    if (same) expect(rows(restored), ctx).toEqual(rows(same.dump));
  }
  // The test itself: recorded moments past the newest backup, so restores replayed archived records.
  expect(replayedUnits, `seed ${seed}: records replayed in all`).toBeGreaterThan(0n);
  repo.close();
}

describe('randomized workload, point-in-time restore of every recorded moment (engine 0.29, sync on)', () => {
  it.each(SEEDS)(
    'seed %i',
    async (seed) => {
      await runSeed(seed);
    },
    600_000,
  );
});
