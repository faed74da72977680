// Named regressions: every way the engine changes a database without stamping
// a page LSN (or while lowering it) reaches the next increment, and a chain
// restore lays down exactly the files of its moment.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, incrementalBackup, restoreChain, verifyChain, type IncrementManifest } from '../index.js';
import { GENS, dataHashes, dump, fixture, insertRows, makeDb, reference, tmp, type Gen } from './helpers.js';

/** Full backup, `change`, increment, chain restore: the restore must dump exactly like the source. */
async function roundTrip(gen: Gen, data: string, change: () => void) {
  const root = tmp();
  const full = join(root, 'full');
  const base = await fullBackup(data, full);
  change();
  const inc = join(root, 'inc');
  const m = await incrementalBackup(data, full, inc);
  const dest = join(root, 'restored');
  await restoreChain(full, [inc], dest);
  expect(dump(gen, dest)).toEqual(dump(gen, data));
  expect(dataHashes(dest)).toEqual(dataHashes(data));
  return { root, full, inc, dest, base, m };
}

const heapPages = (m: IncrementManifest, name: string) =>
  m.changed.flatMap((c) => ('Pages' in c && c.Pages.name === name ? c.Pages.page_indices : []));

describe.each(GENS)('changes the engine does not stamp (engine %s)', (gen) => {
  it('updates and deletes reach the increment even when their pages keep their LSN', async () => {
    const data = makeDb(gen, 500, '--index');
    const { m } = await roundTrip(gen, data, () => {
      fixture(gen, 'delete', data, '--every', 5);
      fixture(gen, 'update', data, '--every', 4);
    });
    expect(heapPages(m, 'T.heap').length).toBeGreaterThan(0);
    expect((dump(gen, data).T as { count: number }).count).toBe(400);
  });

  it('a row that grows enough to move is restored once', async () => {
    const data = makeDb(gen, 300, '--index');
    await roundTrip(gen, data, () => fixture(gen, 'grow', data, '--every', 10, '--bytes', 1500));
    expect((dump(gen, data).T as { count: number }).count).toBe(300);
  });

  it('a dropped table leaves no orphan files in the chain restore', async () => {
    const data = makeDb(gen, 100, '--index');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 50, '--index');
    const { dest } = await roundTrip(gen, data, () => fixture(gen, 'drop-table', data, '--table', 'U'));
    expect(readdirSync(dest).filter((n) => n.startsWith('U'))).toEqual([]);
  });

  it('a table dropped and re-created smaller, then larger, is restored as it is', async () => {
    const data = makeDb(gen, 400, '--index');
    await roundTrip(gen, data, () => fixture(gen, 'recreate', data, '--rows', 50));
    await roundTrip(gen, data, () => fixture(gen, 'recreate', data, '--rows', 700));
  });

  it('indexes created later and columns added and dropped are restored', async () => {
    const data = makeDb(gen, 200);
    await roundTrip(gen, data, () => {
      fixture(gen, 'create-index', data, '--column', 'id');
      fixture(gen, 'add-column', data, '--column', 'extra');
    });
    await roundTrip(gen, data, () => fixture(gen, 'drop-column', data, '--column', 'extra'));
  });

  it("an increment on a base without content maps (the reference crate's) reads the base once and misses nothing", async () => {
    const data = makeDb(gen, 400, '--index');
    const root = tmp();
    const full = join(root, 'ref-full');
    reference(gen, 'full', data, full);
    expect(existsSync(join(full, 'contents.json'))).toBe(false);
    fixture(gen, 'delete', data, '--every', 3);
    const inc = join(root, 'inc');
    const m = await incrementalBackup(data, full, inc);
    expect(heapPages(m, 'T.heap').length).toBeGreaterThan(0);
    const dest = join(root, 'restored');
    await restoreChain(full, [inc], dest);
    expect(dump(gen, dest)).toEqual(dump(gen, data));
  });

  it('verify --source reports every file and page that differs from a data directory', async () => {
    const data = makeDb(gen, 300, '--index');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 20);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    expect((await verifyChain(full, [], { source: data })).errors).toEqual([]);

    fixture(gen, 'delete', data, '--every', 7); // unstamped on 0.4.7: only content shows it
    fixture(gen, 'drop-table', data, '--table', 'U');
    const report = await verifyChain(full, [], { source: data });
    expect(report.ok).toBe(false);
    const pages = report.errors.filter((e) => e.file === 'T.heap' && e.page !== undefined);
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.every((e) => e.code === 'ERR_DIFFERS')).toBe(true);
    expect(report.errors.map((e) => e.message)).toContain(`U.heap: in the backup but not in ${data}`);
  });
});

describe('powdb-storage 0.4.7: the LSN goes backwards when the table with the highest LSN is dropped', () => {
  it('the next increments are accepted, miss nothing, and survive an alter in that window', async () => {
    const gen = 'old';
    const data = makeDb(gen, 200, '--index');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 400);
    const root = tmp();
    const full = join(root, 'full');
    const base = await fullBackup(data, full);
    fixture(gen, 'drop-table', data, '--table', 'U');
    insertRows(gen, data, 200, 10); // into the last page, stamped below the base's LSN
    const inc1 = join(root, 'inc1');
    const m1 = await incrementalBackup(data, full, inc1);
    expect(m1.source_lsn).toBeLessThan(base.source_lsn);
    const atInc1 = dump(gen, data);
    const dest1 = join(root, 'restored1');
    await restoreChain(full, [inc1], dest1);
    expect(dump(gen, dest1)).toEqual(atInc1);
    fixture(gen, 'add-column', data, '--column', 'extra');
    fixture(gen, 'delete', data, '--every', 9);
    const inc2 = join(root, 'inc2');
    await incrementalBackup(data, [full, inc1], inc2);
    const dest = join(root, 'restored');
    await restoreChain(full, [inc1, inc2], dest);
    expect(dataHashes(dest)).toEqual(dataHashes(data));
    expect(dump(gen, dest)).toEqual(dump(gen, data));
  });
});

describe('powdb-storage 0.29: the heap superblock changes without an LSN', () => {
  const gen = 'new';
  const format = (dir: string) => (dump(gen, dir).T as { heap_format: number }).heap_format;

  it('the first overflow row ships page 0 and the restore finds the big row', async () => {
    const data = makeDb(gen, 3, '--index');
    const { m, dest } = await roundTrip(gen, data, () => fixture(gen, 'big', data, '--id', 100, '--bytes', 12000));
    expect(heapPages(m, 'T.heap')).toContain(0);
    expect(format(dest)).toBe(3);
    expect((dump(gen, dest).T as { count: number }).count).toBe(4);
  });

  it('a table with overflow rows re-created at least as large gets its v2 superblock back', async () => {
    const data = makeDb(gen, 3, '--index');
    fixture(gen, 'big', data, '--id', 100, '--bytes', 12000);
    const { dest } = await roundTrip(gen, data, () => fixture(gen, 'recreate', data, '--rows', 300));
    expect(format(dest)).toBe(2);
  });

  it('verify names a v2 superblock over overflow pages in a chain the reference crate made', async () => {
    const data = makeDb(gen, 3, '--index');
    const root = tmp();
    const full = join(root, 'full');
    reference(gen, 'full', data, full);
    fixture(gen, 'big', data, '--id', 100, '--bytes', 12000);
    const inc = join(root, 'inc');
    reference(gen, 'incr', data, inc, '--base', full); // ships by page LSN only: page 0 is left behind
    const report = await verifyChain(full, [inc]);
    const found = report.errors.find((e) => e.code === 'ERR_PAGE_FORMAT');
    expect(found?.message).toContain('superblock says format 2');
    expect(found?.page).toBeGreaterThan(0);
  });
});
