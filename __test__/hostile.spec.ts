// Hostile and malformed backups: each is refused with a stable code by both
// restore and verify, and nothing is written outside the destination.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreChain, verifyChain } from '../index.js';
import { GENS, editText, makeChain, rejectsWith, tmp, tree } from './helpers.js';

type Chain = Awaited<ReturnType<typeof makeChain>>;
const manifest = (c: Chain) => join(c.full, 'manifest.json');
const increment = (c: Chain) => join(c.inc, 'increment.json');
const replaceIn = (path: (c: Chain) => string, from: string | RegExp, to: string) => (c: Chain) =>
  editText(path(c), (t) => {
    const out = t.replace(from, to);
    if (out === t) throw new Error(`test setup: ${from} not found in ${path(c)}`);
    return out;
  });

/** Edits a `contents.json` and signs it again, as an attacker could: only its checks stand in the way. */
const resigned = (path: (c: Chain) => string, from: string | RegExp, to: string) => (c: Chain) => {
  replaceIn(path, from, to)(c);
  editText(path(c), (t) => {
    const zeroed = t.replace(/"sha256": "[0-9a-f]{64}"/, `"sha256": "${'0'.repeat(64)}"`);
    return zeroed.replace('0'.repeat(64), createHash('sha256').update(zeroed).digest('hex'));
  });
};
const contents = (c: Chain) => join(c.inc, 'contents.json');

const NAMES = [
  '../escape',
  'sub/T.heap',
  'a\\\\b',
  '/tmp/abs',
  'nul\\u0000x',
  'C:x',
  'sp ace',
  '..',
  '.',
  '',
  'é.heap',
];

const CASES: [string, (c: Chain) => void, string][] = [
  ...NAMES.map((name): [string, (c: Chain) => void, string] => [
    `file name ${JSON.stringify(name)}`,
    replaceIn(manifest, '"name": "T.heap"', `"name": "${name}"`),
    'ERR_BAD_MANIFEST',
  ]),
  ['a duplicate name', replaceIn(manifest, '"name": "catalog.bin"', '"name": "T.heap"'), 'ERR_BAD_MANIFEST'],
  [
    'a delta not named <name>.delta',
    replaceIn(increment, '"delta_file": "T.heap.delta"', '"delta_file": "catalog.bin"'),
    'ERR_BAD_MANIFEST',
  ],
  [
    'a delta named after another heap',
    replaceIn(increment, '"delta_file": "T.heap.delta"', '"delta_file": "U.heap.delta"'),
    'ERR_BAD_MANIFEST',
  ],
  [
    'a page index at total_pages',
    (c) =>
      editText(increment(c), (t) => t.replace(/("page_indices": \[\s*)\d+/, `$1${/"total_pages": (\d+)/.exec(t)![1]}`)),
    'ERR_BAD_MANIFEST',
  ],
  [
    'delta records that differ from the manifest',
    (c) =>
      editText(increment(c), (t) => t.replace(/("page_indices": \[\s*)(\d+)/, (_, pre, i) => `${pre}${Number(i) - 1}`)),
    'ERR_BAD_DELTA',
  ],
  [
    'a delta_len that is not count * 4100',
    replaceIn(increment, /"delta_len": (\d+)/, '"delta_len": 4099'),
    'ERR_BAD_MANIFEST',
  ],
  [
    'a delta file of the wrong length',
    (c) =>
      writeFileSync(
        join(c.inc, 'T.heap.delta'),
        Buffer.concat([readFileSync(join(c.inc, 'T.heap.delta')), Buffer.alloc(10)]),
      ),
    'ERR_BAD_DELTA',
  ],
  [
    'a file longer than the manifest says',
    (c) =>
      writeFileSync(
        join(c.full, 'catalog.bin'),
        Buffer.concat([readFileSync(join(c.full, 'catalog.bin')), Buffer.from('x')]),
      ),
    'ERR_INTEGRITY',
  ],
  ['malformed JSON', replaceIn(manifest, '"files": [', '"files": [,'), 'ERR_BAD_MANIFEST'],
  [
    'a string where a number belongs',
    replaceIn(manifest, /"source_lsn": (\d+)/, '"source_lsn": "1"'),
    'ERR_BAD_MANIFEST',
  ],
  ['a negative length', replaceIn(manifest, /"len": (\d+)/, '"len": -4096'), 'ERR_BAD_MANIFEST'],
  [
    'a number above u64',
    replaceIn(increment, /"source_lsn": (\d+)/, '"source_lsn": 18446744073709551616'),
    'ERR_BAD_MANIFEST',
  ],
  ['a missing file', (c) => rmSync(join(c.full, 'catalog.bin')), 'ERR_MISSING_FILE'],
  [
    'an unknown manifest format',
    replaceIn(manifest, '"format_version": 1', '"format_version": 2'),
    'ERR_UNSUPPORTED_FORMAT',
  ],
  [
    'an unknown increment format',
    replaceIn(increment, '"format_version": 1', '"format_version": 99'),
    'ERR_UNSUPPORTED_FORMAT',
  ],
  [
    'a symlinked file in the backup',
    (c) => {
      rmSync(join(c.full, 'T.heap'));
      symlinkSync('/etc/hostname', join(c.full, 'T.heap'));
    },
    'ERR_UNSAFE_PATH',
  ],
  [
    'a symlinked delta',
    (c) => {
      rmSync(join(c.inc, 'T.heap.delta'));
      symlinkSync('/etc/hostname', join(c.inc, 'T.heap.delta'));
    },
    'ERR_UNSAFE_PATH',
  ],
  [
    'a symlinked manifest',
    (c) => {
      const real = join(c.root, 'elsewhere.json');
      writeFileSync(real, readFileSync(manifest(c)));
      rmSync(manifest(c));
      symlinkSync(real, manifest(c));
    },
    'ERR_UNSAFE_PATH',
  ],
  [
    'a contents.json name that escapes',
    resigned(contents, '"name": "T_id.idx"', '"name": "../escape"'),
    'ERR_BAD_MANIFEST',
  ],
  [
    'a content map not named <heap>.pagemap',
    resigned(contents, '"name": "T.heap.pagemap"', '"name": "catalog.bin"'),
    'ERR_BAD_MANIFEST',
  ],
  [
    'a contents.json listing a file the chain does not hold',
    resigned(contents, '"name": "T_id.idx"', '"name": "V_id.idx"'),
    'ERR_INTEGRITY',
  ],
  [
    "another backup's contents.json",
    (c) => writeFileSync(contents(c), readFileSync(join(c.full, 'contents.json'))),
    'ERR_INTEGRITY',
  ],
  [
    'a directory where a file belongs',
    (c) => {
      rmSync(join(c.full, 'T_id.idx'));
      mkdirSync(join(c.full, 'T_id.idx'));
    },
    'ERR_UNSAFE_PATH',
  ],
];

describe.each(GENS)('hostile input (engine %s)', (gen) => {
  it.each(CASES.map(([what, tamper, code]) => [what, code, tamper] as const))(
    '%s is refused (%s)',
    async (_, code, tamper) => {
      const chain = await makeChain(gen, 800);
      tamper(chain);
      const before = tree(chain.root);

      const dest = join(chain.root, 'restored');
      await rejectsWith(restoreChain(chain.full, [chain.inc], dest), code);
      expect(tree(chain.root)).toEqual(before); // nothing written anywhere, not even a staging dir
      expect(existsSync(join(chain.root, '..', 'escape'))).toBe(false);

      const report = await verifyChain(chain.full, [chain.inc]);
      expect(report.ok).toBe(false);
      expect(report.errors[0]!.code).toBe(code);
    },
  );

  it('refuses a symlink as the destination and leaves its target alone', async () => {
    const chain = await makeChain(gen, 100);
    const target = tmp();
    const link = join(chain.root, 'link');
    symlinkSync(target, link);
    await rejectsWith(restoreChain(chain.full, [chain.inc], link), 'ERR_UNSAFE_PATH');
    expect(tree(target)).toEqual([]);
  });
});
