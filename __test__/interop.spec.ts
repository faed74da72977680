// Interoperability with the reference crate `powdb-backup` (0.4.7 on the old
// engine, 0.29.0 on the new): each side restores the other's backups, and the
// manifests we write match the reference's byte for byte.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, incrementalBackup, restoreChain } from '../index.js';
import { GENS, dataHashes, ids, insertRows, makeDb, reference, report, tmp } from './helpers.js';

const withoutTime = (text: string) => text.replace(/"created_unix_secs": \d+/, '"created_unix_secs": 0');
const manifestText = (dir: string, file = 'manifest.json') => withoutTime(readFileSync(join(dir, file), 'utf8'));
// 0.4.7 wrote no catalog_version; we always write it, as every release since does.
const asReference = (gen: string, text: string) =>
  gen === 'old' ? text.replace('  "catalog_version": 5,\n', '') : text;

describe.each(GENS)('interop with the reference powdb-backup (engine %s)', (gen) => {
  it('writes the same manifest.json and increment.json as the reference on the same data', async () => {
    const data = makeDb(gen, 600, '--index');
    const refFull = join(tmp(), 'ref-full');
    reference(gen, 'full', data, refFull); // checkpoints first: our copy below sees the same files
    const ourFull = join(tmp(), 'our-full');
    await fullBackup(data, ourFull);
    expect(manifestText(ourFull)).toContain('"catalog_version": 5,');
    expect(asReference(gen, manifestText(ourFull))).toBe(manifestText(refFull));
    expect(dataHashes(ourFull)).toEqual(dataHashes(refFull));

    insertRows(gen, data, 600, 300);
    const ourInc = join(tmp(), 'our-inc');
    await incrementalBackup(data, ourFull, ourInc);
    const refInc = join(tmp(), 'ref-inc');
    reference(gen, 'incr', data, refInc, '--base', refFull);
    expect(asReference(gen, manifestText(ourInc, 'increment.json'))).toBe(manifestText(refInc, 'increment.json'));
    expect(dataHashes(ourInc)).toEqual(dataHashes(refInc));
  });

  it('restores a chain the reference wrote', async () => {
    const data = makeDb(gen, 300, '--index');
    const full = join(tmp(), 'full');
    reference(gen, 'full', data, full);
    insertRows(gen, data, 300, 200);
    const inc1 = join(tmp(), 'inc1');
    reference(gen, 'incr', data, inc1, '--base', full);
    insertRows(gen, data, 500, 100);
    const inc2 = join(tmp(), 'inc2');
    reference(gen, 'incr', data, inc2, '--base', full, '--apply', inc1);

    const dest = join(tmp(), 'ours');
    await restoreChain(full, [inc1, inc2], dest);
    const t = report(gen, dest).T!;
    expect(t.count).toBe(600);
    expect(t.ids).toEqual(ids(0, 600));
  });

  it('writes a chain the reference restores', async () => {
    const data = makeDb(gen, 300, '--index');
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    insertRows(gen, data, 300, 200);
    const inc1 = join(tmp(), 'inc1');
    await incrementalBackup(data, full, inc1);
    insertRows(gen, data, 500, 100);
    const inc2 = join(tmp(), 'inc2');
    await incrementalBackup(data, [full, inc1], inc2);

    const dest = join(tmp(), 'theirs');
    reference(gen, 'restore', full, dest, '--apply', inc1, '--apply', inc2);
    const t = report(gen, dest).T!;
    expect(t.count).toBe(600);
    expect(t.ids).toEqual(ids(0, 600));
  });
});
