// One packed repository for many databases: every backup belongs to a source
// (a name given, else the sync database id, else host and path); increments
// chain within their source, every command that picks a backup picks within
// one, and chunks are stored once whichever database they came from.
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository, type BackupRecord } from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { repoNative } from '../lib/native/repo.js';
import { backupId } from '../lib/repo/record.js';
import { SNAPSHOTS, formatSnapshot, type Snapshot } from '../lib/repo/snapshot.js';
import {
  GENS,
  cli,
  dump,
  fixture,
  insertRows,
  makeDb,
  rejectsWith,
  segments,
  syncEnable,
  tmp,
  type Gen,
} from './helpers.js';

const keyOf = (dir: string) => `${hostname()}:${dir}`;

/** Restores backup `asOf` (of `source`) and dumps it with the engine. */
async function restoredDump(repo: PackedRepository, gen: Gen, asOf?: string | bigint, source?: string) {
  const dest = join(tmp(), 'restored');
  await repo.restore(dest, { ...(asOf !== undefined ? { asOf } : {}), ...(source ? { source } : {}) });
  return dump(gen, dest);
}

describe.each(GENS)('many sources in one repository (engine %s)', (gen) => {
  it('three databases backed up in turn: each chains alone and restores as it was at every backup', async () => {
    const dbs = [makeDb(gen, 300, '--index'), makeDb(gen, 120), makeDb(gen, 40, '--index')];
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const taken: { db: number; record: BackupRecord; dump: unknown }[] = [];
    const take = async (db: number, type?: 'full' | 'diff') => {
      const record = await repo.backup(dbs[db]!, type ? { type } : {});
      taken.push({ db, record, dump: dump(gen, dbs[db]!) });
      return record;
    };
    let next = 10_000;
    const grow = (db: number) => insertRows(gen, dbs[db]!, (next += 1000), 50);
    try {
      await take(0);
      await take(1);
      grow(0);
      await take(0);
      await take(2);
      grow(1);
      await take(1);
      grow(0);
      await take(0, 'diff');
      grow(2);
      await take(2);
      grow(1);
      await take(1);

      const backups = await repo.list();
      for (const [n, { db, record }] of taken.entries()) {
        const previous = taken.slice(0, n).filter((t) => t.db === db);
        expect(record.source?.path).toBe(dbs[db]);
        // The first backup of each database is full; later ones build on its own (diff: on its own full).
        const parent =
          previous.length === 0 ? null : record.type === 'diff' ? previous[0]!.record.id : previous.at(-1)!.record.id;
        expect({ id: record.id, type: record.type === 'full', parent: record.parent }).toEqual({
          id: record.id,
          type: previous.length === 0,
          parent,
        });
        expect(backups.find((r) => r.id === record.id)).toBeDefined();
      }
      for (const { record, dump: then } of taken) expect(await restoredDump(repo, gen, record.id)).toEqual(then);
      for (const [db, dir] of dbs.entries()) {
        const own = taken.filter((t) => t.db === db);
        // The newest, an LSN and a time: within the source named.
        expect(await restoredDump(repo, gen, undefined, keyOf(dir))).toEqual(own.at(-1)!.dump);
        expect(await restoredDump(repo, gen, own[0]!.record.source_lsn, keyOf(dir))).toEqual(own[0]!.dump);
        const tables = await repo.tables({ source: keyOf(dir) });
        expect(tables.backup).toBe(own.at(-1)!.record.id);
      }
      const info = await repo.info();
      expect(info.sources.map((s) => [s.key, s.backups])).toEqual(
        dbs.map((dir, db) => [keyOf(dir), taken.filter((t) => t.db === db).map((t) => t.record.id)]),
      );
    } finally {
      repo.close();
    }
  });
});

describe('picking a backup when a repository holds several sources', () => {
  it('asks for the source for the newest, an LSN or a time; an id is unambiguous', async () => {
    const a = makeDb('new', 200);
    const b = makeDb('new', 30);
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    try {
      const fa = await repo.backup(a);
      const fb = await repo.backup(b);
      for (const asOf of [undefined, fa.source_lsn, new Date()]) {
        const e = await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf }), 'ERR_SOURCE_AMBIGUOUS');
        expect(e.message).toContain('--source <key>');
        expect(e.message).toContain(`${keyOf(a)} (newest ${fa.id}`);
        expect(e.message).toContain(`${keyOf(b)} (newest ${fb.id}`);
      }
      await rejectsWith(repo.export(join(tmp(), 'x')), 'ERR_SOURCE_AMBIGUOUS');
      await rejectsWith(repo.tables(), 'ERR_SOURCE_AMBIGUOUS');
      expect(dump('new', (await repo.restore(join(tmp(), 'byid'), { asOf: fb.id })).dest)).toEqual(dump('new', b));
      expect((await repo.export(join(tmp(), 'e'), { source: keyOf(a) })).id).toBe(fa.id);
      const unknown = await rejectsWith(repo.restore(join(tmp(), 'x'), { source: 'nope' }), 'ERR_NO_BACKUP');
      expect(unknown.message).toContain(keyOf(a));
      await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: fa.id, source: keyOf(b) }), 'ERR_INVALID_ARG');
      // verify compares a data directory with the newest backup of its own source.
      const [checked] = await repo.verify({ source: a });
      expect(checked).toMatchObject({ id: fa.id, report: { ok: true } });
    } finally {
      repo.close();
    }
    const refused = cli('restore', '--repo', dir, join(tmp(), 'c'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERR_SOURCE_AMBIGUOUS');
    const dest = join(tmp(), 'c');
    const ok = cli('restore', '--repo', dir, dest, '--source', keyOf(b), '--json');
    expect(ok.code, ok.stderr).toBe(0);
    expect(dump('new', dest)).toEqual(dump('new', b));
    const info = cli('info', '--repo', dir);
    expect(info.stdout).toContain(`source ${keyOf(a)}, newest from ${keyOf(a)}: 1 backup`);
    const only = parseJson(cli('info', '--repo', dir, '--source', keyOf(b), '--json').stdout) as {
      backups: BackupRecord[];
      sources: { key: string }[];
    };
    expect(only.backups.map((r) => r.source?.path)).toEqual([b]);
    expect(only.sources.map((s) => s.key)).toEqual([keyOf(b)]);

    // An id whose snapshot cannot be read is refused as that, not as ambiguous.
    const bId = only.backups[0]!.id;
    const snapshot = join(dir, 'snapshots', bId);
    const bytes = readFileSync(snapshot);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x5a;
    writeFileSync(snapshot, bytes);
    const reopened = await PackedRepository.open(dir);
    try {
      const damaged = await reopened.restore(join(tmp(), 'd'), { asOf: bId }).catch((e: Error & { code: string }) => e);
      expect(damaged).toBeInstanceOf(Error);
      expect((damaged as Error & { code: string }).code).not.toBe('ERR_SOURCE_AMBIGUOUS');
      expect((damaged as Error).message).toContain(bId);
    } finally {
      reopened.close();
    }
  });
});

describe('the hazard: a second database into a repository that had one', () => {
  it('starts a source of its own with a full backup, never an increment of the first', async () => {
    const a = makeDb('new', 300, '--index');
    const b = makeDb('new', 20);
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    try {
      const fa = await repo.backup(a);
      const fb = await repo.backup(b); // an increment by default: none to build on in its source
      expect(fb).toMatchObject({ type: 'full', parent: null, source: { host: hostname(), path: b } });
      insertRows('new', a, 5000, 10);
      const ia = await repo.backup(a);
      expect(ia).toMatchObject({ type: 'incr', parent: fa.id });
      expect(dump('new', (await repo.restore(join(tmp(), 'ra'), { source: keyOf(a) })).dest)).toEqual(dump('new', a));

      // The same path holding a new database with a lower LSN: refused within the source.
      const moved = join(tmp(), 'moved');
      cpSync(a, moved, { recursive: true });
      rmSync(a, { recursive: true });
      fixture('new', 'create', a, '--rows', 5);
      await rejectsWith(repo.backup(a), 'ERR_LSN_BACKWARDS');
    } finally {
      repo.close();
    }
  });

  it('a named source refuses another database; --same-database forces the chain, and the catalog says so', async () => {
    const a = makeDb('new', 300);
    const b = makeDb('new', 20);
    const dir = join(tmp(), 'repo');
    expect(cli('init', dir).code).toBe(0);
    const first = parseJson(cli('backup', a, '--repo', dir, '--source', 'shop', '--json').stdout) as BackupRecord;
    expect(first.source).toMatchObject({ name: 'shop', path: a });
    expect(cli('info', '--repo', dir, first.id).stdout).toContain(`from ${keyOf(a)}, source shop`);
    const other = cli('backup', b, '--repo', dir, '--source', 'shop');
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('ERR_OTHER_DATABASE');
    expect(other.stderr).toContain(`newest backup ${first.id} is of ${keyOf(a)}`);
    // The old single-source behaviour, forced: b becomes an increment of a's backup, recorded as such.
    const forced = cli('backup', b, '--repo', dir, '--source', 'shop', '--same-database', '--json');
    expect(forced.code, forced.stderr).toBe(0);
    const mixed = parseJson(forced.stdout) as BackupRecord;
    expect(mixed).toMatchObject({ type: 'incr', parent: first.id, source: { name: 'shop', path: b } });
    const info = parseJson(cli('info', '--repo', dir, '--json').stdout) as { sources: { key: string }[] };
    expect(info.sources.map((s) => s.key)).toEqual(['shop']);
    // Any backup restores on its own: the forced one is b, as the catalog says, never a blend.
    const dest = join(tmp(), 'r');
    expect(cli('restore', '--repo', dir, dest).code).toBe(0);
    expect(dump('new', dest)).toEqual(dump('new', b));
    // Without the name, a lands in a source of its own (host and path), beside shop.
    const unnamed = parseJson(cli('backup', a, '--repo', dir, '--json').stdout) as BackupRecord;
    expect(unnamed).toMatchObject({ type: 'full', parent: null });
    // b left --source out, and shop's newest backup is of b: a source of its own, with a warning.
    const forgot = cli('backup', b, '--repo', dir);
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(forgot.stdout).toContain('(full)');
    expect(forgot.stderr).toContain(
      `starting source ${keyOf(b)} with a full backup, while source shop backs up this database: give --source shop`,
    );
  });
});

describe('--same-database without --source', () => {
  it("continues the repository's only source, as before it held several; with several it asks which", async () => {
    const a = makeDb('new', 200);
    const changed = join(tmp(), 'changed');
    const dir = join(tmp(), 'repo');
    expect(cli('init', dir).code).toBe(0);
    const first = parseJson(cli('backup', a, '--repo', dir, '--json').stdout) as BackupRecord;
    cpSync(a, changed, { recursive: true });
    insertRows('new', changed, 7000, 10);
    const cont = cli('backup', changed, '--repo', dir, '--same-database', '--json');
    expect(cont.code, cont.stderr).toBe(0);
    expect(parseJson(cont.stdout)).toMatchObject({ type: 'incr', parent: first.id, source: { name: keyOf(a) } });
    const info = parseJson(cli('info', '--repo', dir, '--json').stdout) as { sources: { key: string }[] };
    expect(info.sources.map((s) => s.key)).toEqual([keyOf(a)]);
    const dest = join(tmp(), 'r');
    expect(cli('restore', '--repo', dir, dest).code).toBe(0);
    expect(dump('new', dest)).toEqual(dump('new', changed));
    // Without the flag the copy is a database of its own; then the flag alone cannot tell which to continue.
    expect(cli('backup', changed, '--repo', dir).code).toBe(0);
    const third = makeDb('new', 20);
    const asked = cli('backup', third, '--repo', dir, '--same-database');
    expect(asked.code).toBe(1);
    expect(asked.stderr).toContain('ERR_SOURCE_AMBIGUOUS');
    expect(asked.stderr).toContain('--source <key>');
  });
});

describe('point-in-time recovery per source (engine 0.29, sync on)', () => {
  it("replays each source's own WAL archive: newest points and LSN targets, whose LSN ranges overlap", async () => {
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    try {
      const dbs = [makeDb('new', 100, '--index'), makeDb('new', 60, '--index')].map((dir) => ({
        dir,
        key: syncEnable(dir).database_id,
        points: [] as { lsn: bigint; dump: unknown }[],
      }));
      for (const db of dbs) expect((await repo.backup(db.dir)).source?.database_id).toBe(db.key);
      const mark = (db: (typeof dbs)[number]) =>
        db.points.push({ lsn: BigInt(segments(db.dir).last_lsn!), dump: dump('new', db.dir) });
      for (const [n, db] of dbs.entries()) {
        insertRows('new', db.dir, 1000 + n, 5);
        mark(db);
        insertRows('new', db.dir, 2000 + n, 7);
        mark(db);
        expect((await repo.archive(db.dir)).archived.length).toBeGreaterThan(0);
      }
      // Both histories cover the same LSNs: an LSN alone cannot say which database.
      expect(dbs[1]!.points[0]!.lsn).toBeLessThan(dbs[0]!.points.at(-1)!.lsn);
      await rejectsWith(repo.restore(join(tmp(), 'x'), { asOf: dbs[0]!.points[0]!.lsn }), 'ERR_SOURCE_AMBIGUOUS');
      for (const db of dbs) {
        const newest = await repo.restore(join(tmp(), 'newest'), { source: db.key });
        expect(newest.replay?.cut_lsn).toBe(db.points.at(-1)!.lsn);
        expect(dump('new', newest.dest)).toEqual(db.points.at(-1)!.dump);
        for (const point of db.points) {
          const r = await repo.restore(join(tmp(), 'point'), { asOf: point.lsn, source: db.key });
          expect(dump('new', r.dest)).toEqual(point.dump);
        }
      }
    } finally {
      repo.close();
    }
  });
});

describe('expire per source', () => {
  it('counts --retain-full in each source; --source expires one alone', async () => {
    const a = makeDb('new', 100);
    const b = makeDb('new', 50);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    try {
      const a1 = await repo.backup(a, { type: 'full' });
      const b1 = await repo.backup(b, { type: 'full' });
      const a2 = await repo.backup(a, { type: 'full' });
      const b2 = await repo.backup(b, { type: 'full' });
      const a3 = await repo.backup(a, { type: 'full' });
      const a3i = await repo.backup(a);
      const onlyB = await repo.expire({ retainFull: 1, source: keyOf(b) });
      expect(onlyB.removed).toEqual([b1.id]);
      expect(onlyB.kept).toEqual([a1.id, a2.id, b2.id, a3.id, a3i.id]);
      await rejectsWith(repo.expire({ retainFull: 1, source: 'nope' }), 'ERR_NO_BACKUP');
      const dry = await repo.expire({ retainFull: 2, dryRun: true });
      expect(dry.removed).toEqual([a1.id]);
      const all = await repo.expire({ retainFull: 1 });
      expect(all.removed).toEqual([a1.id, a2.id]);
      expect((await repo.list()).map((r) => r.id)).toEqual([b2.id, a3.id, a3i.id]);
      expect(dump('new', (await repo.restore(join(tmp(), 'b'), { source: keyOf(b) })).dest)).toEqual(dump('new', b));
      expect(dump('new', (await repo.restore(join(tmp(), 'a'), { source: keyOf(a) })).dest)).toEqual(dump('new', a));
    } finally {
      repo.close();
    }
  });
});

describe('backups that record no source (releases before 0.1.1)', () => {
  it('are one legacy group: the only one, a backup continues it; beside another, restores ask', async () => {
    const a = makeDb('new', 200);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    try {
      // What an old release wrote: records without a source (a migration carries such records over).
      const f = await repo.backup(a, {
        as: { id: '20261101T000000Z-F', type: 'full', parent: null, created: '2026-11-01T00:00:00.000Z' },
      });
      expect(f.source).toBeUndefined();
      const atF = dump('new', a);
      insertRows('new', a, 1000, 20);
      const i = await repo.backup(a, {
        as: { id: '20261102T000000Z-I', type: 'incr', parent: f.id, created: '2026-11-02T00:00:00.000Z' },
      });
      const atI = dump('new', a);
      expect((await repo.info()).sources.map((s) => s.key)).toEqual(['legacy']);
      expect(await restoredDump(repo, 'new', f.id)).toEqual(atF);
      expect(await restoredDump(repo, 'new')).toEqual(atI);
      expect(await restoredDump(repo, 'new', undefined, 'legacy')).toEqual(atI);

      insertRows('new', a, 2000, 20);
      const next = await repo.backup(a);
      expect(next).toMatchObject({ type: 'incr', parent: i.id, source: { path: a } });
      // From then on the old backups are that source's history.
      expect((await repo.info()).sources).toEqual([
        { key: keyOf(a), source: next.source, backups: [f.id, i.id, next.id] },
      ]);

      const b = makeDb('new', 10);
      expect(await repo.backup(b)).toMatchObject({ type: 'full', parent: null });
      await rejectsWith(repo.restore(join(tmp(), 'x')), 'ERR_SOURCE_AMBIGUOUS');
      expect(await restoredDump(repo, 'new', undefined, keyOf(a))).toEqual(dump('new', a));
      expect(await restoredDump(repo, 'new', i.id)).toEqual(atI);
    } finally {
      repo.close();
    }
  });
});

/** Bytes of `after`'s files that differ from `before` (file name to contents), counted in whole 4 KiB pages. */
function changedBytes(before: Map<string, Buffer>, after: string): number {
  let changed = 0;
  for (const name of readdirSync(after)) {
    const now = readFileSync(join(after, name));
    const then = before.get(name) ?? Buffer.alloc(0);
    for (let at = 0; at < now.length; at += 4096) {
      if (!now.subarray(at, at + 4096).equals(then.subarray(at, at + 4096))) changed += Math.min(4096, now.length - at);
    }
  }
  return changed;
}

const contents = (dir: string) => new Map(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]));

describe('deduplication across sources', () => {
  it('a database restored from a backup and diverged by 1% stores about that 1%; a different one stores a full copy', async () => {
    const a = makeDb('new', 40_000, '--pad', '200');
    const dir = join(tmp(), 'repo');
    // Without compression, what is stored is what deduplication left (a copy of other rows compresses alike).
    const repo = await PackedRepository.init(dir, { compression: 'none' });
    const stored = async () => (await repo.totals()).stored_bytes;
    try {
      const first = await repo.backup(a, { source: 'a' });
      const withA = await stored();
      // b: a's backup restored elsewhere, then 1% more rows through the engine.
      const b = (await repo.restore(join(tmp(), 'b'), { asOf: first.id })).dest;
      const before = contents(b);
      insertRows('new', b, 1_000_000, 400);
      const changed = changedBytes(before, b);
      const second = await repo.backup(b, { source: 'b' });
      const withB = await stored();
      // A full backup of a source of its own: what it shares was found in the one chunk index.
      expect(second).toMatchObject({ type: 'full', parent: null, source: { name: 'b', path: b } });
      const grewB = Number(withB - withA);
      expect(changed).toBeGreaterThan(0);
      expect(changed).toBeLessThan(Number(first.logical_bytes) * 0.05);
      // Compressed chunks around the changed pages, their lists and hints, the index and the snapshot.
      expect(grewB).toBeLessThan(4 * changed + 64 * 1024);
      expect(await restoredDump(repo, 'new', second.id)).toEqual(dump('new', b));

      // The control: a database of the same rows, a byte longer each (no page in common): about a full copy.
      const c = makeDb('new', 40_000, '--pad', '201');
      const control = await repo.backup(c, { source: 'c' });
      expect(Number(control.logical_bytes)).toBeGreaterThan(Number(first.logical_bytes) * 0.9);
      const grewC = Number((await stored()) - withB);
      expect(grewC).toBeGreaterThan(Number(withA) * 0.8);
      expect(grewC).toBeGreaterThan(10 * grewB);
    } finally {
      repo.close();
    }
  });
});

describe('a catalog of 300 backups of 30 sources', () => {
  it('groups, chains and reports every backup; the held bytes of each as if computed alone', async () => {
    const base = makeDb('new', 100, '--index');
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const name = (s: number) => `s-${String(s).padStart(2, '0')}`;
    try {
      // 30 real full backups of 30 databases, every third grown so that sources differ in what they hold.
      const dbs: string[] = [];
      const newest: Snapshot[] = [];
      for (let s = 0; s < 30; s++) {
        const db = join(tmp(), name(s));
        cpSync(base, db, { recursive: true });
        if (s % 3 === 0) insertRows('new', db, 1000, 50 + s * 20);
        dbs.push(db);
        newest.push(await repo.snapshot((await repo.backup(db, { source: name(s) })).id));
      }
      // 270 increments written as a backup writes its snapshot, each repeating its source's files.
      const start = Date.parse(newest.at(-1)!.record.created) + 1000;
      for (let k = 30; k < 300; k++) {
        const parent = newest[k % 30]!;
        const at = new Date(start + k);
        const record = { ...parent.record, id: `${backupId(at, 'incr')}-${k}`, type: 'incr' as const };
        Object.assign(record, { parent: parent.record.id, created: at.toISOString(), stored_bytes: 0n, bytes: 0n });
        newest[k % 30] = { ...parent, record };
        await repoNative.writeObject(
          repo.handle.handle,
          `${SNAPSHOTS}${record.id}`,
          Buffer.from(formatSnapshot(newest[k % 30]!)),
        );
      }
      while (Date.now() <= start + 300) await new Promise((r) => setTimeout(r, 5));

      const info = await repo.info();
      expect(info.backups).toHaveLength(300);
      expect(info.sources.map((s) => s.key)).toEqual(dbs.map((_, s) => name(s)));
      const byId = new Map(info.backups.map((r) => [r.id, r]));
      const alone = async (id: string) => {
        const lists = (await repo.snapshot(id)).files.flatMap((f) => [...f.lists, ...(f.hints ?? [])]);
        return (await repoNative.heldBytes(repo.handle.handle, [lists]))[0]!;
      };
      for (const [s, source] of info.sources.entries()) {
        expect(source.backups).toHaveLength(10);
        const chain = source.backups.map((id) => byId.get(id)!);
        expect(chain.map((r) => r.parent)).toEqual([null, ...source.backups.slice(0, -1)]);
        // Every backup of a source repeats its full backup's files: it holds what the full one holds, alone.
        const held = await alone(source.backups[0]!);
        expect(chain.map((r) => r.held_bytes)).toEqual(chain.map(() => held));
        expect(source.backups.at(-1)).toBe(newest[s]!.record.id);
      }
      const heldOf = (s: number) => byId.get(info.sources[s]!.backups[0]!)!.held_bytes!;
      expect(heldOf(3)).toBeGreaterThan(heldOf(1));

      // An increment continues its own source's newest backup; a restore of a source gives its database.
      insertRows('new', dbs[17]!, 5000, 10);
      const incr = await repo.backup(dbs[17]!, { source: name(17) });
      expect(incr).toMatchObject({ type: 'incr', parent: newest[17]!.record.id });
      expect(await restoredDump(repo, 'new', undefined, name(17))).toEqual(dump('new', dbs[17]!));
      expect(await restoredDump(repo, 'new', undefined, name(12))).toEqual(dump('new', dbs[12]!));
    } finally {
      repo.close();
    }
  });
});
