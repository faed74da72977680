import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, incrementalBackup, verifyBackup, verifyChain } from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { GENS, cli, fixture, insertRows, makeChain, makeDb, reference, tmp } from './helpers.js';

describe.each(GENS)('verify without restoring (engine %s)', (gen) => {
  it('passes a clean chain and reports what it checked', async () => {
    const { full, inc } = await makeChain(gen);
    const report = await verifyChain(full, [inc]);
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checks.some((c) => c.includes('T.heap.delta'))).toBe(true);
    expect(report.checks.some((c) => c.includes('catalog checks ok'))).toBe(true);
    expect((await verifyBackup(full)).ok).toBe(true);
  });

  it('names the first bad file and page of a damaged heap', async () => {
    const { full } = await makeChain(gen);
    const heap = join(full, 'T.heap');
    const bytes = readFileSync(heap);
    bytes.writeBigUInt64LE(2n ** 62n, 3 * 4096 + 8); // page 3 claims an LSN from the future
    writeFileSync(heap, bytes);
    const report = await verifyBackup(full);
    expect(report.ok).toBe(false);
    expect(report.errors[0]).toMatchObject({ code: 'ERR_INTEGRITY', file: heap });
    expect(report.errors.find((e) => e.page !== undefined)).toMatchObject({ file: heap, page: 3 });
  });

  it("checks every backup's content maps: a damaged map in the full backup is found by a chain verify", async () => {
    // T gets rows after the full backup (its increment ships pages), U does not (its copy in full is final).
    const data = makeDb(gen, 2000, '--index');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 300);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    insertRows(gen, data, 2000, 300);
    const inc = join(tmp(), 'inc');
    await incrementalBackup(data, full, inc);
    expect((await verifyChain(full, [inc])).errors).toEqual([]);
    for (const name of ['T.heap.pagemap', 'U.heap.pagemap']) {
      const map = join(full, name);
      const bytes = readFileSync(map);
      bytes[bytes.length - 5]! ^= 0x01;
      writeFileSync(map, bytes);
    }
    const alone = await verifyBackup(full);
    const chained = await verifyChain(full, [inc]);
    for (const report of [alone, chained]) {
      expect(report.ok).toBe(false);
      for (const name of ['T.heap.pagemap', 'U.heap.pagemap']) {
        expect(report.errors.filter((e) => e.message.includes(`integrity check failed for ${name}`))).toHaveLength(1);
      }
    }
  });

  it('reports a contents.json missing from the full backup or an increment, but not from a reference-made chain', async () => {
    const { data, full, inc } = await makeChain(gen);
    for (const dir of [full, inc]) {
      const contents = join(dir, 'contents.json');
      const saved = join(tmp(), 'contents.json');
      copyFileSync(contents, saved);
      rmSync(contents);
      const report = await verifyChain(full, [inc]);
      expect(report.ok).toBe(false);
      expect(report.errors).toEqual([
        {
          code: 'ERR_MISSING_FILE',
          file: contents,
          message: `contents.json is missing from ${dir} (backup is corrupt): a backup holding content maps is always written with one`,
        },
      ]);
      if (dir === full) expect((await verifyBackup(full)).errors.map((e) => e.code)).toEqual(['ERR_MISSING_FILE']);
      const shown = cli('verify', full, '--apply', inc);
      expect(shown.code).toBe(1);
      expect(shown.stdout + shown.stderr).toContain(contents);
      copyFileSync(saved, contents);
    }
    expect((await verifyChain(full, [inc])).ok).toBe(true);

    // The reference crate writes no contents.json: its backups verify clean.
    const refFull = join(tmp(), 'ref-full');
    reference(gen, 'full', data, refFull);
    insertRows(gen, data, 2300, 200);
    const refInc = join(tmp(), 'ref-inc');
    reference(gen, 'incr', data, refInc, '--base', refFull);
    const ref = await verifyChain(refFull, [refInc]);
    expect(ref.errors).toEqual([]);
    expect(ref.ok).toBe(true);
  });

  it('reports a broken chain', async () => {
    const { full, inc } = await makeChain(gen);
    const report = await verifyChain(full, [inc, inc]);
    expect(report.ok).toBe(false);
    expect(report.errors[0]!.code).toBe('ERR_CHAIN_BROKEN');
  });

  it('exits 0 when clean and 1 with problems; --json holds the report', async () => {
    const { full, inc } = await makeChain(gen);
    const clean = cli('verify', full, '--apply', inc);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/verified: no problems/);

    const delta = join(inc, 'T.heap.delta');
    const bytes = readFileSync(delta);
    bytes[4 + 2000]! ^= 0x40;
    writeFileSync(delta, bytes);
    const bad = cli('verify', full, '--apply', inc, '--json');
    expect(bad.code).toBe(1);
    const report = parseJson(bad.stdout) as { ok: boolean; errors: { code: string; file: string }[] };
    expect(report.ok).toBe(false);
    expect(report.errors[0]).toMatchObject({ code: 'ERR_INTEGRITY', file: delta });
    expect(cli('verify').code).toBe(2);
  });
});
