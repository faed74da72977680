// Every way an artifact can be damaged (flipped bytes, truncated, extended,
// deleted, renamed) is caught by both `verify` and `restore`, with its code.
import { existsSync, readFileSync, renameSync, rmSync, truncateSync, appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreChain, verifyChain } from '../index.js';
import { GENS, makeChain, rejectsWith } from './helpers.js';

type Damage = 'flip' | 'truncate' | 'extend' | 'delete' | 'rename';

function damage(path: string, how: Damage, flipAt: (size: number) => number): void {
  const size = readFileSync(path).length;
  if (how === 'flip') {
    const bytes = readFileSync(path);
    bytes[flipAt(size)]! ^= 0x01;
    writeFileSync(path, bytes);
  } else if (how === 'truncate') truncateSync(path, Math.floor(size / 2));
  else if (how === 'extend') appendFileSync(path, Buffer.alloc(4100, 7));
  else if (how === 'delete') rmSync(path);
  else renameSync(path, `${path}.moved`);
}

// The code each damage must give, for manifests and for the data files they list.
const MANIFEST_CODES = {
  flip: 'ERR_BAD_MANIFEST',
  truncate: 'ERR_BAD_MANIFEST',
  extend: 'ERR_BAD_MANIFEST',
  delete: 'ERR_NOT_A_BACKUP',
  rename: 'ERR_NOT_A_BACKUP',
};
const FILE_CODES = {
  flip: 'ERR_INTEGRITY',
  truncate: 'ERR_INTEGRITY',
  extend: 'ERR_INTEGRITY',
  delete: 'ERR_MISSING_FILE',
  rename: 'ERR_MISSING_FILE',
};

// artifact -> where it is, where to flip a byte, and the codes.
const ARTIFACTS = {
  manifest: { at: (c: Chain) => join(c.full, 'manifest.json'), flipAt: () => 0, codes: MANIFEST_CODES },
  increment: { at: (c: Chain) => join(c.inc, 'increment.json'), flipAt: () => 0, codes: MANIFEST_CODES },
  // A delta's length counts its records: a wrong one is a malformed delta.
  delta: {
    at: (c: Chain) => join(c.inc, 'T.heap.delta'),
    flipAt: (n: number) => n - 50,
    codes: { ...FILE_CODES, truncate: 'ERR_BAD_DELTA', extend: 'ERR_BAD_DELTA' },
  },
  'whole file': { at: (c: Chain) => join(c.full, 'T_id.idx'), flipAt: (n: number) => n >> 1, codes: FILE_CODES },
  heap: { at: (c: Chain) => join(c.full, 'T.heap'), flipAt: (n: number) => n - 4000, codes: FILE_CODES },
  catalog: { at: (c: Chain) => join(c.full, 'catalog.bin'), flipAt: (n: number) => n - 6, codes: FILE_CODES },
  'content map': { at: (c: Chain) => join(c.inc, 'T.heap.pagemap'), flipAt: (n: number) => n - 9, codes: FILE_CODES },
  // Without its contents.json a backup reads as one the reference made (no maps, every file kept).
  contents: {
    at: (c: Chain) => join(c.inc, 'contents.json'),
    flipAt: (n: number) => n >> 1,
    codes: { flip: 'ERR_INTEGRITY', truncate: 'ERR_INTEGRITY', extend: 'ERR_INTEGRITY' } as Partial<typeof FILE_CODES>,
  },
};

type Chain = Awaited<ReturnType<typeof makeChain>>;
const CASES = Object.entries(ARTIFACTS).flatMap(([artifact, spec]) =>
  (Object.keys(spec.codes) as Damage[]).map((how) => [artifact, how, spec.codes[how]!] as const),
);

describe.each(GENS)('damaged backups are detected (engine %s)', (gen) => {
  it.each(CASES)('%s, %s: %s from verify and from restore', async (artifact, how, code) => {
    const chain = await makeChain(gen, 1500);
    const spec = ARTIFACTS[artifact as keyof typeof ARTIFACTS];
    damage(spec.at(chain), how, spec.flipAt);

    const report = await verifyChain(chain.full, [chain.inc]);
    expect(report.ok).toBe(false);
    expect(report.errors[0]!.code).toBe(code);

    const dest = join(chain.root, 'restored');
    await rejectsWith(restoreChain(chain.full, [chain.inc], dest), code);
    expect(existsSync(dest)).toBe(false);
  });
});
