// Point-in-time recovery through the WAL archive (engine 0.29 with sync on):
// archive the retained segments of a running history, then restore to every
// commit and check with the engine that exactly what was committed by then is there.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository } from '../index.js';
import {
  CLI,
  FIXTURE,
  dump,
  fixture,
  insertRows,
  makeDb,
  rejectsWith,
  segments,
  syncEnable,
  tmp,
  transaction,
} from './helpers.js';

const gen = 'new';
const COMMIT = 4;

/** A sync-enabled database with T (100 rows, indexed), a repository, and its first (full) backup. */
async function setup() {
  const data = makeDb(gen, 100, '--index');
  syncEnable(data);
  const repo = await PackedRepository.init(join(tmp(), 'repo'));
  const base = await repo.backup(data);
  return { data, repo, base };
}

/** The LSN ranges of an archive lineage, without their times. */
const lsnRanges = (l: { ranges: { start_lsn: bigint; end_lsn: bigint }[] } | undefined) =>
  l?.ranges.map(({ start_lsn, end_lsn }) => ({ start_lsn, end_lsn }));

/** Every file under `dir`, as paths. */
const files = (dir: string) =>
  (readdirSync(dir, { recursive: true }) as string[]).map((n) => join(dir, n)).filter((p) => statSync(p).isFile());

/** The newest LSN of the source's history (what its last checkpoint archived into a segment). */
const lastLsn = (data: string, fallback: bigint) => {
  const last = segments(data).last_lsn;
  return last === null ? fallback : BigInt(last);
};

describe('point-in-time recovery through the WAL archive (engine 0.29, sync on)', () => {
  it('restores every commit point exactly, lands inside a transaction on the commit before it, and maps times', async () => {
    const { data, repo, base } = await setup();
    // What the engine sees at each moment history reached (after each command's checkpoint).
    const points: { lsn: bigint; tables: Record<string, unknown>; what: string }[] = [];
    const mark = (what: string) => points.push({ lsn: lastLsn(data, base.source_lsn), tables: dump(gen, data), what });
    mark('base');

    insertRows(gen, data, 100, 5); // autocommit statements
    mark('autocommit inserts');
    const tx1 = transaction(data, { from: 200, count: 10, updateEvery: 7 });
    mark('explicit transaction');
    transaction(data, { from: 300, count: 5, end: 'rollback' }); // never archived: its LSNs are handed out again
    mark('rolled back');
    const run1 = await repo.archive(data);
    expect(run1.archived.length).toBeGreaterThan(0);
    expect(run1.gaps).toEqual([]);
    const afterRun1 = new Date(Date.now() + 5);
    await new Promise((r) => setTimeout(r, 20));

    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 30, '--index');
    mark('DDL and rows of a new table');
    transaction(data, { from: 0, count: 0, deleteEvery: 5 });
    mark('explicit deletes');
    transaction(data, { from: 400, count: 5, end: 'crash' }); // the next open archives its tail, uncommitted
    insertRows(gen, data, 500, 3);
    mark('after a crash, the next session (transaction ids restart at 1)');
    expect((await repo.archive(data)).archived.length).toBeGreaterThan(0);
    expect((await repo.archive(data)).archived).toEqual([]); // idempotent, nothing new

    const archive = await repo.archiveInfo();
    expect(lsnRanges(archive[0])).toEqual([{ start_lsn: base.source_lsn + 1n, end_lsn: points.at(-1)!.lsn }]);

    const restoreTo = async (asOf: bigint | Date) => {
      const dest = join(tmp(), 'r');
      const r = await repo.restore(dest, { asOf });
      return { r, tables: dump(gen, dest) };
    };
    // Rows, schemas and index health must match; indexes created after the base backup are not in
    // the WAL (the catalog of the base does not name them), which the restore says in its notes.
    const rows = (tables: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(
          tables as Record<string, { count: number; rows_hash: string; schema: unknown; index_ok: boolean }>,
        ).map(([name, t]) => [
          name,
          { count: t.count, rows_hash: t.rows_hash, schema: t.schema, index_ok: t.index_ok },
        ]),
      );
    for (const p of points) {
      const { r, tables } = await restoreTo(p.lsn);
      expect(rows(tables), `${p.what} (LSN ${p.lsn})`).toEqual(rows(p.tables));
      expect((tables.T as { indexes: unknown }).indexes).toEqual((p.tables.T as { indexes: unknown }).indexes);
      if (r.replay) expect(r.replay.notes.join(' ')).toContain('indexes created after the base backup');
      expect(r.sourceLsn).toBe(p.lsn);
      if (p.lsn > base.source_lsn) expect(r.replay?.cut_lsn).toBe(p.lsn);
      else expect(r.replay).toBeUndefined();
    }

    // Every commit in the archived history is a point the engine opens at, with as many rows as
    // the points around it allow; a target just before a commit lands on the point before that transaction.
    const history = segments(data, true).segments.flatMap((s) => s.records!);
    const commits = history.filter((u) => u.type === COMMIT).map((u) => BigInt(u.lsn));
    const count = (tables: Record<string, unknown>) => (tables.T as { count: number }).count;
    for (const c of commits) {
      const { r, tables } = await restoreTo(c);
      expect(r.replay?.cut_lsn, `commit at ${c}`).toBe(c);
      const before = points.filter((p) => p.lsn <= c).at(-1)!;
      const after = points.find((p) => p.lsn >= c)!;
      const n = count(tables);
      expect(n).toBeGreaterThanOrEqual(Math.min(count(before.tables), count(after.tables)));
      expect(n).toBeLessThanOrEqual(Math.max(count(before.tables), count(after.tables)));
    }
    const inside = BigInt(tx1.commit_lsn!) - 1n;
    const { r: insideTx, tables: insideTables } = await restoreTo(inside);
    expect(insideTx.replay?.target_lsn).toBe(inside);
    expect(insideTx.replay?.cut_lsn).toBe(BigInt(tx1.lsn_before));
    expect(rows(insideTables)).toEqual(rows(points.find((p) => p.what === 'autocommit inserts')!.tables));

    // A time maps to the newest LSN known by then: the end of what archive run 1 stored.
    const { r: byTime, tables: timeTables } = await restoreTo(afterRun1);
    expect(byTime.replay?.cut_lsn).toBe(points.find((p) => p.what === 'rolled back')!.lsn);
    expect(rows(timeTables)).toEqual(rows(points.find((p) => p.what === 'rolled back')!.tables));
    const { r: beforeRun } = await restoreTo(new Date(Date.parse(base.created) + 1));
    expect(beforeRun.replay).toBeUndefined();

    // Without a target: the newest backup, then everything the archive reaches.
    const latest = join(tmp(), 'latest');
    expect((await repo.restore(latest)).replay?.cut_lsn).toBe(points.at(-1)!.lsn);
    expect(rows(dump(gen, latest))).toEqual(rows(points.at(-1)!.tables));

    const beyond = points.at(-1)!.lsn + 10n;
    const err = await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: beyond }), 'ERR_BEYOND_ARCHIVE');
    expect(err.message).toContain(`newest reachable point is LSN ${points.at(-1)!.lsn}`);
    repo.close();
  });

  it('preserve is refused before the newest archived history; fork and strip are not', async () => {
    const { data, repo } = await setup();
    insertRows(gen, data, 100, 3);
    const middle = lastLsn(data, 0n);
    insertRows(gen, data, 200, 3);
    await repo.archive(data);
    const identity = JSON.parse(readFileSync(join(data, '.powdb-sync', 'identity.json'), 'utf8'));

    const e = await rejectsWith(
      repo.restore(join(tmp(), 'p'), { asOf: middle, syncMode: 'preserve' }),
      'ERR_SYNC_MODE',
    );
    expect(e.message).toContain('reuse');
    const fork = await repo.restore(join(tmp(), 'f'), { asOf: middle, syncMode: 'fork' });
    expect(fork.sync?.identity?.database_id).not.toBe(identity.database_id);
    const dest = join(tmp(), 'p2');
    const newest = await repo.restore(dest, { asOf: lastLsn(data, 0n), syncMode: 'preserve' });
    expect(newest.sync?.identity?.database_id).toBe(identity.database_id);
    expect(dump(gen, dest)).toEqual(dump(gen, data));
    repo.close();
  });

  it('reports a gap, refuses a target inside it naming the reachable point, and verify finds it', async () => {
    const { data, repo, base } = await setup();
    insertRows(gen, data, 100, 2);
    const reachable = lastLsn(data, 0n);
    insertRows(gen, data, 200, 2);
    insertRows(gen, data, 300, 2);
    const lost = segments(data).segments.find((s) => BigInt(s.start_lsn) === reachable + 1n)!;
    const retained = join(data, '.powdb-sync', 'retained');
    renameSync(join(retained, lost.file), join(tmp(), lost.file)); // a segment lost before it was archived
    const run = await repo.archive(data);
    expect(run.new_gap).toBe(true);
    expect(run.gaps).toEqual([{ after_lsn: reachable, next_lsn: BigInt(lost.end_lsn) + 1n }]);

    const err = await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: lastLsn(data, 0n) }), 'ERR_ARCHIVE_GAP');
    expect(err.message).toContain(`newest reachable point is LSN ${reachable}`);
    expect((await repo.restore(join(tmp(), 'ok'), { asOf: reachable })).replay?.cut_lsn).toBe(reachable);
    const archiveReport = (await repo.verify()).find((r) => r.id === 'archive')!.report;
    expect(archiveReport.errors.map((e) => e.code)).toEqual(['ERR_ARCHIVE_GAP']);
    expect(base.source_lsn).toBeLessThan(reachable);
    repo.close();
  });

  it('refuses a damaged segment at archive time, and finds damage in the archive at verify and restore', async () => {
    const { data, repo } = await setup();
    insertRows(gen, data, 100, 3);
    const retained = join(data, '.powdb-sync', 'retained');
    const [first] = readdirSync(retained).filter((n) => n.endsWith('.prul'));
    const path = join(retained, first!);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    bad.writeUInt8(bad.readUInt8(80) ^ 0x01, 80);
    writeFileSync(path, bad);
    await rejectsWith(repo.archive(data), 'ERR_BAD_SEGMENT');
    writeFileSync(path, good);
    await repo.archive(data);

    // Damage the repository's copy: the packs that archive run wrote hold only segment data.
    const before = new Set(files(join(repo.dir, 'data')));
    insertRows(gen, data, 200, 1);
    await repo.archive(data);
    const archivePacks = files(join(repo.dir, 'data')).filter((f) => !before.has(f));
    expect(archivePacks.length).toBeGreaterThan(0);
    const damaged = archivePacks[0]!;
    const bytes = readFileSync(damaged);
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    writeFileSync(damaged, bytes);
    const reports = await repo.verify();
    expect(reports.find((r) => r.id === 'archive')!.report.ok).toBe(false);
    await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: lastLsn(data, 0n) }), 'ERR_INTEGRITY');
    repo.close();
  });

  it('a SIGKILL during archive never leaves a segment accepted but wrong; the next run completes it', async () => {
    const data = makeDb(gen, 100, '--index');
    syncEnable(data);
    let next = 100;
    for (const [point, n] of [
      ['archive-packs-committed', 1],
      ['archive-record-written', 1],
      ['archive-record-written', 2],
    ] as const) {
      const repoDir = join(tmp(), 'repo');
      const repo = await PackedRepository.init(repoDir);
      await repo.backup(data);
      repo.close();
      for (const _ of [1, 2]) insertRows(gen, data, (next += 10), 1); // two new segments
      const killed = spawnSync(process.execPath, [CLI, 'archive', data, '--repo', repoDir], {
        encoding: 'utf8',
        env: { ...process.env, POWDB_BACKUP_CRASH_AT: `${point}:${n}` },
      });
      expect(killed.signal, `${point}:${n} ${killed.stderr}`).toBe('SIGKILL');
      const again = await PackedRepository.open(repoDir);
      for (const report of await again.verify()) expect(report.report.errors, `${point}:${n} ${report.id}`).toEqual([]);
      const rerun = await again.archive(data);
      expect(rerun.gaps).toEqual([]);
      const newest = lastLsn(data, 0n);
      const dest = join(tmp(), 'r');
      expect((await again.restore(dest, { asOf: newest })).sourceLsn).toBe(newest);
      expect(dump(gen, dest)).toEqual(dump(gen, data));
      again.close();
    }
  });

  it('expire keeps the archive the retained backups replay and removes the rest, pruning its chunks', async () => {
    const { data, repo } = await setup();
    insertRows(gen, data, 100, 3);
    insertRows(gen, data, 200, 3);
    await repo.archive(data);
    const second = await repo.backup(data, { type: 'full' }); // archives first (nothing new), then a new full
    insertRows(gen, data, 300, 3);
    const newest = lastLsn(data, 0n);
    await repo.archive(data);
    const before = (await repo.archiveInfo())[0]!;
    expect(lsnRanges(before)).toEqual([{ start_lsn: expect.any(BigInt), end_lsn: newest }]);

    const r = await repo.expire({ retainFull: 1 });
    expect(r.archiveRemoved?.length).toBeGreaterThan(0);
    const after = (await repo.archiveInfo())[0]!;
    expect(lsnRanges(after)).toEqual([{ start_lsn: second.source_lsn + 1n, end_lsn: newest }]);
    expect(r.pruned!.blobsRemoved).toBeGreaterThan(0);
    for (const report of await repo.verify()) expect(report.report.errors, report.id).toEqual([]);
    const dest = join(tmp(), 'r');
    expect((await repo.restore(dest, { asOf: newest })).replay?.cut_lsn).toBe(newest);
    expect(dump(gen, dest)).toEqual(dump(gen, data));
    repo.close();
  });

  it('says why history stopped when wal.log holds a value too large to archive (ERR_SYNC_OVERFLOW)', async () => {
    const { data, repo } = await setup();
    insertRows(gen, data, 100, 2);
    // powdb-sync 0.29 cannot archive an overflow record: the close that would checkpoint fails.
    const big = spawnSync(FIXTURE, ['big', data, '--gen', gen, '--id', '900', '--bytes', '9000'], { encoding: 'utf8' });
    expect(big.status).not.toBe(0);
    const e = await rejectsWith(repo.archive(data), 'ERR_SYNC_OVERFLOW');
    expect(e.message).toMatch(/record type 11 at LSN \d+/);
    expect(e.message).toContain(`archived history stops at LSN ${lastLsn(data, 0n)}`);
    expect((await repo.archiveInfo())[0]!.ranges.at(-1)!.end_lsn).toBe(lastLsn(data, 0n)); // what could be, was
    await rejectsWith(repo.backup(data), 'ERR_SYNC_OVERFLOW');
    repo.close();
  });

  it('CLI: archive, info and restore --as-of say what they did', async () => {
    const { data, repo } = await setup();
    const dir = repo.dir;
    repo.close();
    insertRows(gen, data, 100, 2);
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    const archived = cli('archive', data, '--repo', dir);
    expect(archived.status, archived.stderr).toBe(0);
    expect(archived.stdout).toMatch(/^archived 1 segment \(LSNs \d+-\d+, .*\); the archive holds LSNs \d+-\d+$/m);
    expect(cli('archive', data, '--repo', dir).stdout).toMatch(/^nothing new to archive; /);
    const info = cli('info', '--repo', dir);
    expect(info.stdout).toMatch(
      /WAL archive of database [0-9a-f]{32} generation 1: 1 segment, .* restorable up to LSN \d+/,
    );
    const newest = lastLsn(data, 0n);
    const restored = cli('restore', '--repo', dir, join(tmp(), 'r'), '--as-of', String(newest));
    expect(restored.status, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`then the archived WAL to LSN ${newest}`);
    expect(restored.stdout).toContain('note: the WAL brings back rows and table DDL');
    const json = JSON.parse(
      cli('restore', '--repo', dir, join(tmp(), 'j'), '--as-of', String(newest), '--json').stdout,
    );
    expect(json.replay.cut_lsn).toBe(Number(newest));
    const plain = makeDb(gen, 5);
    const refused = cli('archive', plain, '--repo', dir);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('error [ERR_NOT_SYNC_ENABLED]');
  });

  it('archive runs beside a backup: both go on side by side, and both have done their work', async () => {
    const data = makeDb(gen, 30_000, '--index');
    syncEnable(data);
    const dir = join(tmp(), 'repo');
    const writer = await PackedRepository.init(dir);
    await writer.backup(data);
    insertRows(gen, data, 30_000, 100);
    const archiver = await PackedRepository.open(dir);
    const backup = writer.backup(data, { type: 'full' });
    await new Promise((r) => setTimeout(r, 20)); // the backup is under way by now
    const archived = await archiver.archive(data, { lockWaitMs: 60_000 });
    const record = await backup;
    expect(record.type).toBe('full');
    // Both archived what was new (a segment both stored is recorded once); no gap, one range.
    expect(archived.gaps).toEqual([]);
    expect(lsnRanges((await archiver.archiveInfo())[0])).toEqual([
      { start_lsn: expect.any(BigInt), end_lsn: lastLsn(data, 0n) },
    ]);
    await rejectsWith(archiver.archive(makeDb(gen, 5)), 'ERR_NOT_SYNC_ENABLED');
    writer.close();
    archiver.close();
  });

  it('never replays across an alter table add column (PowDB 0.29 loses rows there): refused, or the newest point stops before it', async () => {
    const { data, repo } = await setup();
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 20);
    insertRows(gen, data, 100, 5);
    const safe = lastLsn(data, 0n);
    fixture(gen, 'add-column', data, '--table', 'U', '--column', 'note');
    insertRows(gen, data, 200, 5);
    const newest = lastLsn(data, 0n);
    await repo.archive(data);

    const e = await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: newest }), 'ERR_REPLAY_UNSAFE');
    expect(e.message).toContain(`the newest safe point from this backup is LSN ${safe}`);
    const latest = await repo.restore(join(tmp(), 'latest'));
    expect(latest.replay?.cut_lsn).toBe(safe);
    expect(latest.replay?.notes.join(' ')).toMatch(/stopped at LSN \d+, before the alter table add column/);
    expect((await repo.restore(join(tmp(), 'safe'), { asOf: safe })).replay?.cut_lsn).toBe(safe);

    // A backup after the alter restores past it.
    await repo.backup(data);
    const dest = join(tmp(), 'after');
    expect((await repo.restore(dest, { asOf: newest })).sourceLsn).toBe(newest);
    expect(dump(gen, dest)).toEqual(dump(gen, data));
    repo.close();
  });
});
