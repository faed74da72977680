// `powdb-backup tables`: what a backup holds, read from its catalog alone, against what the engine made and reads.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository, Repository, chainTables, fullBackup, incrementalBackup } from '../index.js';
import { cli, dump, fixture, insertRows, makeDb, rejectsWith, richDb, segments, syncEnable, tmp } from './helpers.js';

type Dumped = Record<
  string,
  { count: number; schema: { name: string; type: string; required: boolean }[]; indexes: string[] }
>;

/** The listing agrees with the engine's dump: tables, columns and types, indexes, and (when counted) rows. */
function agrees(info: Awaited<ReturnType<typeof chainTables>>, source: Dumped, counted: boolean): void {
  expect(info.tables.map((t) => t.name).sort()).toEqual(Object.keys(source).sort());
  for (const t of info.tables) {
    const d = source[t.name]!;
    expect(
      t.columns.map((c) => [c.name, c.type, c.required]),
      t.name,
    ).toEqual(d.schema.map((c) => [c.name, c.type.toLowerCase(), c.required]));
    expect(
      t.indexes.map((x) => (x.expression ? `expr:${x.key}` : x.key)),
      t.name,
    ).toEqual(d.indexes);
    expect(t.rows, t.name).toBe(counted ? BigInt(d.count) : undefined);
  }
}

describe('tables', () => {
  it('lists a directory chain: columns, indexes, sizes from the backup, links, views; rows on request', async () => {
    const data = richDb();
    const root = tmp();
    await fullBackup(data, join(root, 'full'));
    const atFull = dump('new', data) as Dumped;
    const sizes = Object.fromEntries(
      ['Doc.heap', 'Doc_id.idx', 'Doc_1.eidx'].map((f) => [f, BigInt(statSync(join(data, f)).size)]),
    );
    insertRows('new', data, 100, 200);
    await incrementalBackup(data, join(root, 'full'), join(root, 'inc'));
    const atInc = dump('new', data) as Dumped;

    const full = await chainTables(join(root, 'full'), []);
    expect(full.catalogVersion).toBe(7);
    agrees(full, atFull, false);
    const doc = full.tables.find((t) => t.name === 'Doc')!;
    expect(doc.heapBytes).toBe(sizes['Doc.heap']);
    expect(doc.indexes.map((x) => [x.file, x.bytes, x.unique])).toEqual([
      ['Doc_id.idx', sizes['Doc_id.idx'], true],
      ['Doc_1.eidx', sizes['Doc_1.eidx'], false],
    ]);
    expect(full.links.map((l) => `${l.owner}.${l.name}->${l.target}`)).toEqual(['Doc.owner_row->Cust']);
    expect(full.views.map((v) => v.name)).toEqual(['Big']);

    const inc = await chainTables(join(root, 'full'), [join(root, 'inc')], { rows: true });
    agrees(inc, atInc, true);
    const t = inc.tables.find((x) => x.name === 'T')!;
    expect(t.heapBytes).toBe(BigInt(statSync(join(data, 'T.heap')).size));

    const one = await chainTables(join(root, 'full'), [], { tables: ['T'] });
    expect([one.tables.map((x) => x.name), one.links, one.views]).toEqual([['T'], [], []]);
    const e = await rejectsWith(chainTables(join(root, 'full'), [], { tables: ['Nope'] }), 'ERR_NO_TABLE');
    expect(e.message).toBe('the backup has no table Nope; it has: T, Cust, Doc, Big');
  });

  it('lists an old-generation chain (catalog version 3)', async () => {
    const data = makeDb('old', 30, '--index');
    fixture('old', 'add-table', data, '--table', 'U', '--rows', 7);
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    const info = await chainTables(backup, [], { rows: true });
    expect(info.catalogVersion).toBe(3);
    agrees(info, dump('old', data) as Dumped, true);
  });

  it('lists each backup of a repository, and a point between backups as the engine recovers it', async () => {
    const data = makeDb('new', 60, '--index');
    syncEnable(data);
    const repoDir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(repoDir);
    const first = await repo.backup(data);
    const atFirst = dump('new', data) as Dumped;
    fixture('new', 'add-table', data, '--table', 'Later', '--rows', 9, '--index');
    const lsn = BigInt(segments(data).last_lsn!);
    await repo.archive(data);
    repo.close();

    const reader = await Repository.open(repoDir);
    const atBackup = await reader.tables({ asOf: first.id });
    expect([atBackup.backup, atBackup.lsn]).toEqual([first.id, first.source_lsn]);
    agrees(atBackup, atFirst, false);
    const point = await reader.tables({ asOf: lsn });
    expect(point.lsn).toBe(lsn);
    expect(point.tables.map((t) => t.name)).toEqual(['T', 'Later']); // the point's catalog, not the backup's
    // As a whole restore of the point reads (the replay brings back table DDL, not indexes made after the backup).
    const whole = join(tmp(), 'whole');
    await reader.restore(whole, { asOf: lsn });
    agrees(point, dump('new', whole) as Dumped, true);
    reader.close();

    const text = cli('tables', '--repo', repoDir, '--as-of', first.id);
    expect(text.stdout).toMatch(
      new RegExp(
        `^backup ${first.id}, LSN ${first.source_lsn}: 1 table, catalog version 5\n` +
          'T: heap \\d+\\.\\d KiB\n  columns: id int required, name str required, score int\n  indexes: id \\(\\d.*\\)\n$',
      ),
    );
  });
});
