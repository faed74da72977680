import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyBackup, verifyChain } from '../index.js';
import { parseJson } from '../lib/json.js';
import { GENS, cli, makeChain } from './helpers.js';

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
