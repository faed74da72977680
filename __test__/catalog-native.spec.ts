// The catalog binding (crate/src/catalog_binding.rs) on databases the real engine made: what `catalog.bin` and
// `views.bin` say, and the subset a table restore writes.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { catalogNative } from '../lib/native/catalog.js';
import { fixture, makeDb, rejectsWith, tmp, richDb } from './helpers.js';

describe('catalog binding', () => {
  it('reads tables, columns, indexes, links and views as the engine wrote them', async () => {
    const info = await catalogNative.read(richDb());
    expect(info.version).toBe(7);
    expect(info.tables.map((t) => t.name)).toEqual(['T', 'Cust', 'Doc', 'Big']);
    const doc = info.tables.find((t) => t.name === 'Doc')!;
    expect(doc.heap).toBe('Doc.heap');
    expect(doc.columns.map((c) => `${c.name}:${c.typeName}${c.required ? '!' : ''}`)).toEqual([
      'id:int!',
      'owner:int',
      'doc:json',
      'note:str',
    ]);
    expect(doc.indexes).toEqual([
      { key: 'id', unique: true, expression: false, file: 'Doc_id.idx' },
      { key: 'v1:.doc->"kind"', unique: false, expression: true, file: 'Doc_1.eidx' },
    ]);
    expect(info.links).toEqual([
      { owner: 'Doc', name: 'owner_row', target: 'Cust', localKey: 'owner', targetKey: 'id', kind: 'many' },
    ]);
    expect(info.views).toEqual([{ name: 'Big', query: 'Cust filter .id > 3 { .id }', dependsOn: ['Cust'] }]);
  });

  it('selects a renamed table: its files under the new name, dangling links and views dropped', async () => {
    const dir = richDb();
    const dest = tmp();
    const subset = await catalogNative.select(dir, [{ name: 'Doc', renameTo: 'OldDoc' }], dest);
    expect(subset.tables).toEqual([{ from: 'Doc', to: 'OldDoc' }]);
    expect(subset.files).toEqual([
      { from: 'Doc.heap', to: 'OldDoc.heap', required: true },
      { from: 'Doc_id.idx', to: 'OldDoc_id.idx', required: false },
      { from: 'Doc_1.eidx', to: 'OldDoc_1.eidx', required: false },
    ]);
    expect(subset.links).toEqual([]);
    expect(subset.droppedLinks.map((l) => `${l.owner}.${l.name}`)).toEqual(['Doc.owner_row']);
    expect([subset.views, subset.droppedViews]).toEqual([[], ['Big']]);
    const written = await catalogNative.read(dest);
    expect(written.version).toBe(7);
    expect(written.tables.map((t) => t.name)).toEqual(['OldDoc']);
    expect(written.views).toEqual([]);

    const both = await catalogNative.select(dir, [{ name: 'Cust' }, { name: 'Doc' }, { name: 'Big' }]);
    expect(both.links.map((l) => `${l.owner}->${l.target}`)).toEqual(['Doc->Cust']);
    expect(both.views).toEqual(['Big']);
  });

  it('a name the catalog lacks is ERR_NO_TABLE listing the tables it has; nothing is written', async () => {
    const dest = tmp();
    const e = await rejectsWith(catalogNative.select(richDb(), [{ name: 'Orders' }], dest), 'ERR_NO_TABLE');
    expect(e.message).toBe('the backup has no table Orders; it has: T, Cust, Doc, Big');
    expect(existsSync(join(dest, 'catalog.bin'))).toBe(false);
    await rejectsWith(catalogNative.select(richDb(), [{ name: 'T', renameTo: '../x' }]), 'ERR_INVALID_ARG');
  });

  it('an old-generation catalog (version 3) lists and selects; a damaged one is ERR_CATALOG', async () => {
    const dir = makeDb('old', 20, '--index');
    fixture('old', 'add-table', dir, '--table', 'U', '--rows', 5);
    const info = await catalogNative.read(dir);
    expect([info.version, info.tables.map((t) => t.name), info.links, info.views]).toEqual([3, ['T', 'U'], [], []]);
    const subset = await catalogNative.select(dir, [{ name: 'U', renameTo: 'V' }]);
    expect(subset.files).toEqual([{ from: 'U.heap', to: 'V.heap', required: true }]);
    const bytes = readFileSync(join(dir, 'catalog.bin'));
    bytes[bytes.length - 1]! ^= 1;
    const damaged = tmp();
    await import('node:fs/promises').then((fs) => fs.writeFile(join(damaged, 'catalog.bin'), bytes));
    await rejectsWith(catalogNative.read(damaged), 'ERR_CATALOG');
  });
});
