import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, incrementalBackup, readIncrement, restoreChain } from '../index.js';
import { GENS, dataHashes, fixture, ids, insertRows, makeDb, rejectsWith, report, tmp } from './helpers.js';

const pagesOf = (m: Awaited<ReturnType<typeof readIncrement>>, name: string) =>
  m.changed.flatMap((c) => ('Pages' in c && c.Pages.name === name ? [c.Pages] : []))[0];

describe.each(GENS)('incremental backup and chain restore (engine %s)', (gen) => {
  it('ships only the few pages a small change touched', async () => {
    const data = makeDb(gen, 5000);
    const fullDir = join(tmp(), 'full');
    const base = await fullBackup(data, fullDir);
    insertRows(gen, data, 5000, 5);
    const inc = await incrementalBackup(data, fullDir, join(tmp(), 'inc'));

    const heap = pagesOf(inc, 'T.heap')!;
    expect(heap.total_pages).toBeGreaterThanOrEqual(10);
    expect(heap.page_indices.length).toBeGreaterThanOrEqual(1);
    expect(heap.page_indices.length).toBeLessThanOrEqual(3);
    expect(inc.base_source_lsn).toBe(base.source_lsn);
    expect(inc.source_lsn).toBeGreaterThan(inc.base_source_lsn);
  });

  it('chain restore of 200 + 160 rows has every row and equals a full backup of that state', async () => {
    const data = makeDb(gen, 200, '--index');
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    insertRows(gen, data, 200, 160);
    const inc = join(tmp(), 'inc');
    await incrementalBackup(data, full, inc);
    const reference = join(tmp(), 'full-now');
    await fullBackup(data, reference);

    const dest = join(tmp(), 'restored');
    const result = await restoreChain(full, [inc], dest);
    expect(result.increments).toBe(1);
    expect(result.sourceLsn).toBe((await readIncrement(inc)).source_lsn);
    expect(dataHashes(dest)).toEqual(dataHashes(reference));

    const t = report(gen, dest).T!;
    expect(t.count).toBe(360);
    for (const id of [0, 1, 199, 200, 359]) expect(t.ids).toContain(id);
  });

  it('restores every prefix of a chain of increments built on each other', async () => {
    const data = makeDb(gen, 100, '--index');
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    const chain: string[] = [];
    const counts = [100];
    for (let step = 1; step <= 4; step++) {
      insertRows(gen, data, counts.at(-1)!, 50 * step);
      counts.push(counts.at(-1)! + 50 * step);
      const inc = join(tmp(), `inc${step}`);
      const m = await incrementalBackup(data, [full, ...chain], inc);
      if (chain.length > 0) expect(m.base_source_lsn).toBe((await readIncrement(chain.at(-1)!)).source_lsn);
      chain.push(inc);
    }

    for (let n = 0; n <= chain.length; n++) {
      const dest = join(tmp(), `prefix${n}`);
      await restoreChain(full, chain.slice(0, n), dest);
      const t = report(gen, dest).T!;
      expect(t.count).toBe(counts[n]);
      expect(t.ids).toEqual(ids(0, counts[n]!));
    }
  });

  it('refuses an increment applied to the wrong base, writing nothing', async () => {
    const data = makeDb(gen, 100);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    insertRows(gen, data, 100, 100);
    const inc1 = join(tmp(), 'inc1');
    await incrementalBackup(data, full, inc1);
    insertRows(gen, data, 200, 100);
    const inc2 = join(tmp(), 'inc2');
    await incrementalBackup(data, [full, inc1], inc2);

    const dest = join(tmp(), 'r');
    const err = await rejectsWith(restoreChain(full, [inc2], dest), 'ERR_CHAIN_BROKEN');
    expect(err.message).toMatch(/chain broken/);
    expect(err.message).toContain(`expected base lsn ${(await readIncrement(inc1)).base_source_lsn}`);
    expect(existsSync(dest)).toBe(false);
    await rejectsWith(restoreChain(full, [inc2, inc1], dest), 'ERR_CHAIN_BROKEN');
  });

  it('ships catalog.bin whole after DDL and restores both tables', async () => {
    const data = makeDb(gen, 120, '--index');
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 30);
    const inc = join(tmp(), 'inc');
    const m = await incrementalBackup(data, full, inc);

    const whole = m.changed.flatMap((c) => ('Whole' in c ? [c.Whole.name] : []));
    expect(whole).toContain('catalog.bin');
    expect(whole).toContain('U.heap'); // a new heap ships whole: deltas cannot carry unstamped pages
    const dest = join(tmp(), 'r');
    await restoreChain(full, [inc], dest);
    const tables = report(gen, dest);
    expect(tables.T!.count).toBe(120);
    expect(tables.U!.count).toBe(30);
    expect(tables.U!.ids).toEqual(ids(0, 30));
  });

  it('ships nothing for an unchanged database; on a base from another database it still restores exactly', async () => {
    const data = makeDb(gen, 300);
    const full = join(tmp(), 'full');
    const base = await fullBackup(data, full);
    const inc = join(tmp(), 'inc');
    const m = await incrementalBackup(data, full, inc);
    expect(m.changed).toEqual([]);
    expect(m.source_lsn).toBe(base.source_lsn);
    expect(readdirSync(inc).sort()).toEqual(['T.heap.pagemap', 'contents.json', 'increment.json']);
    expect(statSync(inc).mode & 0o777).toBe(0o700);

    // Its LSN is behind the base's: page LSNs say nothing changed, content maps say everything did.
    const other = makeDb(gen, 3);
    const x = join(tmp(), 'x');
    const m2 = await incrementalBackup(other, full, x);
    expect(m2.source_lsn).toBeLessThan(base.source_lsn);
    const dest = join(tmp(), 'r');
    await restoreChain(full, [x], dest);
    expect(dataHashes(dest)).toEqual(dataHashes(other));
  });
});
