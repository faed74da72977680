// Table-level restore from a repository on real S3-compatible servers: the same code path as a local repository
// (lib/repo/packed/restore-tables.ts), with only the chosen table's objects fetched; `dump` of a table likewise.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackedRepository, Repository } from '../../index.js';
import { dump, insertRows, rejectsWith, richDb, tmp } from '../helpers.js';
import { engineRows, expectSameRows, readDump } from '../dump-read.js';
import { envFor, freshPrefix, s3Targets } from './targets.js';

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
});

describe.each(s3Targets().map((t) => [t.name, t] as const))('restore --table from %s', (_name, target) => {
  it('restores one table, renamed, at each backup, lists the tables and dumps one; the engine reads exactly the source table', async () => {
    for (const k of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_ENDPOINT', 'AWS_DEFAULT_REGION']) delete process.env[k];
    Object.assign(process.env, envFor(target));
    const url = freshPrefix(target, 'tables');
    const data = richDb();
    const repo = await PackedRepository.init(url);
    const first = await repo.backup(data);
    const atFirst = dump('new', data);
    const docAtFirst = engineRows(data, 'Doc');
    insertRows('new', data, 400, 30, 'Cust');
    await repo.backup(data);
    const atSecond = dump('new', data);
    repo.close();

    const reader = await Repository.open(url);
    for (const [asOf, expected] of [
      [first.id, atFirst],
      [undefined, atSecond],
    ] as const) {
      for (const name of ['Cust', 'Doc']) {
        const dest = join(tmp(), 'one');
        const r = await reader.restore(dest, { asOf, tables: [name], rename: { [name]: `${name}_s3` } });
        expect(r.tables!.tables.map((t) => t.as)).toEqual([`${name}_s3`]);
        expect(dump('new', dest)).toEqual({ [`${name}_s3`]: expected[name] });
      }
    }
    const listed = await reader.tables({ asOf: first.id, tables: ['Doc'] });
    expect(listed.tables.map((t) => [t.name, t.heapBytes > 0n, t.indexes.length])).toEqual([['Doc', true, 2]]);
    expect(listed.links.map((l) => l.target)).toEqual(['Cust']);
    for (const format of ['jsonl', 'csv'] as const) {
      const out = join(tmp(), `doc.${format}`);
      const dumped = await reader.dump({ asOf: first.id, table: 'Doc', format, output: out });
      expect([dumped.backup, dumped.route]).toEqual([first.id, 'files']);
      expectSameRows(readDump(out, format, docAtFirst.columns), docAtFirst, `Doc from ${target.name} as ${format}`);
    }
    const e = await rejectsWith(reader.restore(join(tmp(), 'x'), { tables: ['Nope'] }), 'ERR_NO_TABLE');
    expect(e.message).toBe('the backup has no table Nope; it has: T, Cust, Doc, Big');
    reader.close();
  });
});
