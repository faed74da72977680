// Merging restored tables into an existing, stopped database (`restore --table T --into <data-dir>`) on databases
// the real engine (0.29) made: into targets of catalog version 5, 6 and 7, with and without expression indexes, a
// link and a view; from a directory chain and a repository. After a merge the engine opens and verifies the target,
// the merged tables hold exactly the source's rows and indexes, the target's own tables are untouched, and the
// merged tables take writes. What a merge must refuse leaves the target as it was; a merge killed at any moment
// leaves either the target as it was or the merge done, and its rerun finishes it.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, restoreChain } from '../index.js';
import { engineNative } from '../lib/native/engine.js';
import { mergeTables } from '../lib/restore/merge.js';
import type { TableSource } from '../lib/restore/tables.js';
import {
  CLI,
  FIXTURE,
  blake3Hex,
  cli,
  dump,
  fixture,
  insertRows,
  makeDb,
  rejectsWith,
  richDb,
  segments,
  syncEnable,
  tmp,
} from './helpers.js';

type Dumped = Record<string, { count: number; index_ok: boolean; indexes?: unknown }>;

/** T (index on id), Cust (index, an overflow row), Doc (expression index, no link) and Big (a view over Cust): version 6. */
function v6Db(): string {
  const dir = makeDb('new', 20, '--index');
  fixture('new', 'add-table', dir, '--table', 'Cust', '--rows', 10, '--index');
  fixture('new', 'extras', dir, '--target', 'Cust', '--rows', 15, '--no-link');
  return dir;
}

function catalogVersion(dir: string): number {
  return readFileSync(join(dir, 'catalog.bin')).readUInt16LE(4);
}

/** Engine open (replay, index rebuild, checkpoint) and verify, then: own tables as before, merged ones as the source. */
async function checkMerged(
  target: string,
  before: Dumped,
  source: Dumped,
  merged: [string, string][],
  what: string,
): Promise<void> {
  const finalized = (await engineNative.finalize(target)).tables.map((t) => t.name);
  // In catalog order: the target's own, then the merged ones.
  expect(finalized.slice(-merged.length).sort(), what).toEqual(merged.map(([, as]) => as).sort());
  expect(finalized.slice(0, -merged.length).sort(), what).toEqual(Object.keys(before).sort());
  const after = dump('new', target) as Dumped;
  for (const name of Object.keys(before)) expect(after[name], `${what}: own table ${name}`).toEqual(before[name]);
  for (const [name, as] of merged) expect(after[as], `${what}: ${name} as ${as}`).toEqual(source[name]);
  // The merged tables take writes: inserts through the engine wherever the workload picks (seeded: every table).
  const INSERTS_ONLY =
    'update-in-place,grow,delete,big,create-table,drop-table,recreate,create-index,add-column,drop-column,sweep';
  fixture('new', 'workload', target, '--seed', 11, '--ops', 40, '--skip', INSERTS_ONLY);
  const written = dump('new', target) as Dumped;
  for (const [, as] of merged) {
    expect(written[as]!.count, `${what}: rows of ${as} after inserts`).toBeGreaterThan(after[as]!.count);
    expect(written[as]!.index_ok, what).toBe(true);
  }
  await engineNative.finalize(target);
}

async function backupOf(data: string): Promise<string> {
  const dir = join(tmp(), 'full');
  await fullBackup(data, dir);
  return dir;
}

/** Every file of a data directory (not LOCK) with its BLAKE3, and its subdirectories by name. */
function hashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name !== 'LOCK') out[e.name] = e.isFile() ? blake3Hex(readFileSync(join(dir, e.name))) : 'dir';
  }
  return out;
}

describe('restore --table --into: merges', () => {
  it('into databases of catalog version 5, 6 and 7, with and without expression indexes, links and views', async () => {
    const data = richDb();
    const backup = await backupOf(data);
    const source = dump('new', data) as Dumped;
    const cases: { target: () => string; version: number; tables: [string, string][]; views?: string[] }[] = [
      // v5: plain tables, and a view with its backing table and the table it reads.
      { target: () => makeDb('new', 30, '--index'), version: 5, tables: [['T', 'T2']] },
      {
        target: () => makeDb('new', 30, '--index'),
        version: 5,
        tables: [
          ['Cust', 'Cust'],
          ['Big', 'Big'],
        ],
        views: ['Big'],
      },
      // v6: an expression index, renumbered above the target's own; Doc's link goes (Cust is not merged).
      { target: v6Db, version: 6, tables: [['Doc', 'Doc2']] },
      // v7: an expression index and the link between the two merged tables.
      {
        target: richDb,
        version: 7,
        tables: [
          ['Doc', 'Doc2'],
          ['Cust', 'Cust2'],
        ],
      },
    ];
    for (const c of cases) {
      const target = c.target();
      const what = `into v${c.version}: ${c.tables.map((t) => t.join(' as ')).join(', ')}`;
      expect(catalogVersion(target), what).toBe(c.version);
      const before = dump('new', target) as Dumped;
      const r = await restoreChain(backup, [], target, {
        tables: c.tables.map(([name]) => name),
        rename: Object.fromEntries(c.tables.filter(([n, as]) => n !== as)),
        into: true,
      });
      expect(r.tables!.merged, what).toEqual({
        into: target,
        catalogVersion: c.version,
        views: c.views ?? [],
        finishedRerun: false,
      });
      expect(catalogVersion(target), what).toBe(c.version);
      expect(
        readdirSync(target).filter((n) => n.startsWith('.powdb')),
        what,
      ).toEqual([]);
      await checkMerged(target, before, source, c.tables, what);
    }
  }, 240_000);

  it('a version-5 table into a version-7 database', async () => {
    const plain = makeDb('new', 25, '--index');
    insertRows('new', plain, 100, 5);
    const backup = await backupOf(plain);
    const target = richDb();
    const before = dump('new', target) as Dumped;
    await restoreChain(backup, [], target, { tables: ['T'], rename: { T: 'T5' }, into: true });
    await checkMerged(target, before, dump('new', plain) as Dumped, [['T', 'T5']], 'v5 into v7');
  }, 120_000);

  it('from a repository through the CLI, with a JSON summary', async () => {
    const data = richDb();
    const repoDir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(repoDir);
    await repo.backup(data);
    repo.close();
    const target = v6Db();
    const before = dump('new', target) as Dumped;
    const r = cli('restore', '--repo', repoDir, '--into', target, '--table', 'Doc', '--rename', 'Doc=Doc9', '--json');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.tables.tables).toEqual([{ name: 'Doc', as: 'Doc9', rows: 40, indexes: ['id', 'expr:v1:.doc->"kind"'] }]);
    expect(out.tables.merged).toMatchObject({ into: target, catalog_version: 6, views: [], finished_rerun: false });
    const text = cli('restore', '--repo', repoDir, '--into', target, '--table', 'T', '--rename', 'T=T3');
    expect(text.stdout).toMatch(/\nmerged into .* \(catalog version 6 kept\)\n/);
    await checkMerged(
      target,
      before,
      dump('new', data) as Dumped,
      [
        ['Doc', 'Doc9'],
        ['T', 'T3'],
      ],
      'repository',
    );
    expect(cli('restore', '--repo', repoDir, '--into', target).code).toBe(2); // no --table
    expect(cli('restore', '--repo', repoDir, join(tmp(), 'x'), '--into', target, '--table', 'T').code).toBe(2);
  }, 120_000);
});

describe('restore --table --into: a point between backups', () => {
  it('restores the point whole inside the target, merges the table, and leaves nothing else behind', async () => {
    const data = makeDb('new', 80, '--index');
    fixture('new', 'add-table', data, '--table', 'U', '--rows', 20, '--index');
    syncEnable(data);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    await repo.backup(data);
    insertRows('new', data, 500, 15, 'U');
    const lsn = BigInt(segments(data).last_lsn!);
    const atPoint = dump('new', data) as Dumped;
    insertRows('new', data, 900, 5, 'U');
    expect((await repo.archive(data)).gaps).toEqual([]);
    const target = richDb();
    const before = dump('new', target) as Dumped;
    const r = await repo.restore(target, { asOf: lsn, tables: ['U'], rename: { U: 'U_then' }, into: true });
    repo.close();
    expect([r.tables!.route, r.replay?.cut_lsn, r.tables!.merged?.catalogVersion]).toEqual(['whole', lsn, 7]);
    expect(readdirSync(target).filter((n) => n.startsWith('.powdb'))).toEqual([]);
    await checkMerged(target, before, atPoint, [['U', 'U_then']], `U at LSN ${lsn}`);
  }, 120_000);
});

describe('restore --table --into: refusals leave the target as it was', () => {
  it('a name the target has, a live LOCK, a WAL with records, a catalog version it does not write', async () => {
    const data = richDb();
    const backup = await backupOf(data);
    const target = makeDb('new', 30, '--index');
    const unchanged = hashes(target);
    const merge = (dir: string, tables: string[], rename: Record<string, string> = {}) =>
      restoreChain(backup, [], dir, { tables, rename, into: true });

    const exists = await rejectsWith(merge(target, ['T']), 'ERR_TABLE_EXISTS');
    expect(exists.message).toContain('the target already has a table T; merge it under another name with --rename T=');
    const renamed = await rejectsWith(merge(target, ['Cust'], { Cust: 'T' }), 'ERR_TABLE_EXISTS');
    expect(renamed.message).toContain(
      'the target already has a table T; merge Cust under another name with --rename Cust=',
    );
    const old = await rejectsWith(merge(target, ['Doc'], { Doc: 'D' }), 'ERR_CATALOG_VERSION');
    expect(old.message).toContain('table D has an expression index on doc.kind, which needs catalog version 6');
    // Refused from the backup's catalog alone, before a table is restored.
    const fromBackup: TableSource = {
      files: readdirSync(backup).map((name) => ({ name, len: 0n })),
      sync: undefined,
      async write(files) {
        for (const f of files) copyFileSync(join(backup, f.name), f.dest);
      },
    };
    let restored = 0;
    const restoreTo = async () => {
      restored += 1;
      throw new Error('not reached');
    };
    await rejectsWith(mergeTables(target, [{ name: 'Doc' }], {}, restoreTo, fromBackup), 'ERR_CATALOG_VERSION');
    expect(restored).toBe(0);
    expect(hashes(target)).toEqual(unchanged);
    expect(readdirSync(target).filter((n) => n.startsWith('.powdb'))).toEqual([]);

    // A live engine holds the target.
    const server = spawn(FIXTURE, ['hold', target, '--gen', 'new'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(createInterface({ input: server.stdout! }), 'line');
    try {
      const locked = await rejectsWith(merge(target, ['Cust']), 'ERR_LOCKED');
      expect(locked.message).toContain('stop the PowDB server cleanly');
    } finally {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }

    // A crashed server's directory: rows in the WAL only.
    const dirty = makeDb('new', 30, '--index');
    fixture('new', 'dirty', dirty, '--table', 'T', '--from', 1000, '--count', 5);
    const wal = await rejectsWith(merge(dirty, ['Cust']), 'ERR_NOT_CHECKPOINTED');
    expect(wal.message).toMatch(/wal\.log holds \d+ bytes of WAL records .* so that it checkpoints, then merge\./);

    // Versions a merge does not write: a newer engine's, and PowDB 0.4's.
    const newer = makeDb('new', 10);
    const bytes = readFileSync(join(newer, 'catalog.bin'));
    bytes.writeUInt16LE(8, 4);
    bytes.writeUInt32LE(crc32(bytes.subarray(0, bytes.length - 4)), bytes.length - 4);
    writeFileSync(join(newer, 'catalog.bin'), bytes);
    const v8 = await rejectsWith(merge(newer, ['Cust']), 'ERR_UNSUPPORTED_FORMAT');
    expect(v8.message).toContain("the target's catalog.bin has version 8");
    const older = makeDb('old', 10);
    await rejectsWith(merge(older, ['Cust']), 'ERR_UNSUPPORTED_FORMAT');
    // A table of a PowDB 0.4 backup (catalog version 3) into a 0.29 database.
    const oldBackup = await backupOf(makeDb('old', 10, '--index'));
    const fromOld = await rejectsWith(
      restoreChain(oldBackup, [], target, { tables: ['T'], rename: { T: 'T_old' }, into: true }),
      'ERR_UNSUPPORTED_FORMAT',
    );
    expect(fromOld.message).toContain("the backup's catalog is version 3 (PowDB 0.4)");
    expect(hashes(target)).toEqual(unchanged);
    await rejectsWith(merge(join(tmp(), 'none'), ['Cust']), 'ERR_NOT_A_DATA_DIR');
    const synced = makeDb('new', 10);
    syncEnable(synced);
    const sync = await rejectsWith(merge(synced, ['Cust']), 'ERR_INVALID_ARG');
    expect(sync.message).toContain('is sync-enabled');
    await rejectsWith(restoreChain(backup, [], target, { into: true }), 'ERR_INVALID_ARG');
  }, 120_000);
});

describe('restore --table --into: killed at any moment, then run again', () => {
  const points = [
    'table-files-written',
    'table-finalized',
    'merge-planned',
    'merge-file-moved:1',
    'merge-file-moved:3',
    'merge-files-published',
    'merge-catalog-published',
    'merge-plan-removed',
  ];

  it('leaves the target as it was or the merge done, never half-merged; the rerun finishes it', async () => {
    const data = richDb();
    const backup = await backupOf(data);
    const pristine = makeDb('new', 30, '--index');
    const before = dump('new', pristine) as Dumped;
    const source = dump('new', data) as Dumped;
    const merged: [string, string][] = [
      ['T', 'T2'],
      ['Cust', 'Cust'],
      ['Big', 'Big'],
    ];
    const args = [CLI, 'restore', backup, '--into', '', '--quiet'];
    for (const [name, as] of merged) args.push('--table', name, ...(name === as ? [] : ['--rename', `${name}=${as}`]));
    // Random moments inside a merge: fractions of how long a whole one takes here.
    const timed = join(tmp(), 'target');
    spawnSync('cp', ['-a', pristine, timed]);
    const started = Date.now();
    const whole = spawnSync(
      process.execPath,
      args.map((a) => (a === '' ? timed : a)),
      { encoding: 'utf8' },
    );
    expect(whole.status, whole.stderr).toBe(0);
    const took = Date.now() - started;
    const kills = [...points, ...[0.3, 0.5, 0.7, 0.85, 0.95].map((f) => `after:${Math.round(f * took)}`)];
    let expected: Dumped | undefined;
    for (const kill of kills) {
      const target = join(tmp(), 'target');
      spawnSync('cp', ['-a', pristine, target]);
      const run = [...args];
      run[run.indexOf('--into') + 1] = target;
      const original = readFileSync(join(pristine, 'catalog.bin'));
      if (kill.startsWith('after:')) {
        const child = spawn(process.execPath, run, { stdio: 'ignore' });
        const exited = once(child, 'exit'); // it may end before the kill
        await new Promise((r) => setTimeout(r, Number(kill.slice(6))));
        child.kill('SIGKILL');
        await exited;
      } else {
        const [point, n] = kill.split(':');
        const env = { ...process.env, POWDB_BACKUP_CRASH_AT: `${point}:${n ?? 1}` };
        const killed = spawnSync(process.execPath, run, { env, encoding: 'utf8' });
        expect(killed.signal, `${kill}: ${killed.stderr}`).toBe('SIGKILL');
      }
      const catalog = readFileSync(join(target, 'catalog.bin'));
      if (catalog.equals(original)) {
        // Not merged yet: the engine opens the target as it was (before the rerun, as a user might).
        expect(dump('new', target), kill).toEqual(before);
      } else {
        // The catalog is replaced last: everything it names is there.
        const now = dump('new', target) as Dumped;
        expect(Object.keys(now).sort(), kill).toEqual([...Object.keys(before), 'T2', 'Cust', 'Big'].sort());
      }
      // Killed after the end: the catalog published and the plan gone (a kill may leave the rest of the journal).
      const done = !catalog.equals(original) && !existsSync(join(target, '.powdb-merge', 'plan.json'));
      const rerun = spawnSync(process.execPath, run, { encoding: 'utf8' });
      if (done) {
        // The rerun finds the tables there.
        expect(rerun.stderr, kill).toMatch(/^error \[ERR_TABLE_EXISTS\]: the target already has a table T2;/);
      } else {
        expect(rerun.status, `${kill}: ${rerun.stderr}`).toBe(0);
      }
      expect(
        readdirSync(target).filter((n) => n.startsWith('.powdb')),
        kill,
      ).toEqual([]);
      await engineNative.finalize(target);
      const after = dump('new', target) as Dumped;
      for (const [n, as] of merged) expect(after[as], `${kill}: ${as}`).toEqual(source[n]);
      for (const n of Object.keys(before)) expect(after[n], `${kill}: own ${n}`).toEqual(before[n]);
      expected ??= after;
      expect(after, kill).toEqual(expected);
    }
  }, 600_000);

  it('a planned merge is not finished over a target whose catalog changed since: the rerun refuses', async () => {
    const data = richDb();
    const backup = await backupOf(data);
    const target = makeDb('new', 30, '--index');
    const run = [CLI, 'restore', backup, '--into', target, '--table', 'Cust', '--quiet'];
    const env = { ...process.env, POWDB_BACKUP_CRASH_AT: 'merge-planned:1' };
    expect(spawnSync(process.execPath, run, { env }).signal).toBe('SIGKILL');
    fixture('new', 'add-table', target, '--table', 'W', '--rows', 3); // the server ran in between
    const rerun = spawnSync(process.execPath, run, { encoding: 'utf8' });
    expect(rerun.stderr).toMatch(
      /^error \[ERR_SOURCE_CHANGED\]: .*catalog\.bin changed since an interrupted merge of Cust/,
    );
    expect(Object.keys(dump('new', target)).sort()).toEqual(['T', 'W']);
  }, 120_000);

  it('negative control: the merged catalog published before the files is a directory the engine refuses', async () => {
    const data = richDb();
    const backup = await backupOf(data);
    const target = makeDb('new', 30, '--index');
    const run = [CLI, 'restore', backup, '--into', target, '--table', 'Cust', '--quiet'];
    const env = { ...process.env, POWDB_BACKUP_CRASH_AT: 'merge-planned:1' };
    expect(spawnSync(process.execPath, run, { env }).signal).toBe('SIGKILL');
    // What the order of publication prevents: the catalog first.
    copyFileSync(join(target, '.powdb-merge', 'catalog.bin'), join(target, 'catalog.bin'));
    const open = spawnSync(FIXTURE, ['report', target, '--gen', 'new'], { encoding: 'utf8' });
    expect(open.status, 'the engine opened a catalog naming a heap that is not there').not.toBe(0);
    expect(existsSync(join(target, 'Cust.heap'))).toBe(false);
  }, 120_000);
});
