// Table-level restore (`restore --table`) on databases the real engine made: from a directory chain, from a
// repository (at a backup, and at a point between backups through the WAL archive), on both engine generations.
// Each table restored alone (and renamed) must hold exactly what the engine's dump of the source showed for it,
// with its indexes; the engine opens and verifies it; the table takes writes afterwards.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PackedRepository, Repository, fullBackup, incrementalBackup, restoreChain } from '../index.js';
import { restoreTables, type TableSource } from '../lib/restore/tables.js';
import {
  cli,
  dump,
  fixture,
  insertRows,
  makeDb,
  rejectsWith,
  segments,
  syncEnable,
  tmp,
  type Gen,
  richDb,
} from './helpers.js';

/** Only inserts, through the engine, into whatever shape the table has. */
const INSERTS_ONLY = [
  '--skip',
  'update-in-place,grow,delete,big,create-table,drop-table,recreate,create-index,add-column,drop-column,sweep',
];

/** The restored directory holds `as` alone, equal to the source's `name`; it takes writes and still checks. */
function checkRestored(gen: Gen, dest: string, as: string, expected: unknown, what: string): void {
  const after = dump(gen, dest);
  expect(Object.keys(after), what).toEqual([as]);
  expect(after[as], what).toEqual(expected);
  const before = (after[as] as { count: number }).count;
  fixture(gen, 'workload', dest, '--seed', 7, '--ops', 3, ...INSERTS_ONLY);
  const written = dump(gen, dest)[as] as { count: number; index_ok: boolean };
  expect(written.count, `${what}: rows after inserts`).toBeGreaterThan(before);
  expect(written.index_ok, what).toBe(true);
}

describe('restore --table from a directory chain', () => {
  it('restores each table alone and renamed, at the full backup and after an increment', async () => {
    const data = richDb();
    const root = tmp();
    await fullBackup(data, join(root, 'full'));
    const atFull = dump('new', data);
    insertRows('new', data, 100, 40);
    fixture('new', 'big', data, '--table', 'T', '--id', 5000, '--bytes', 7000);
    fixture('new', 'add-table', data, '--table', 'Late', '--rows', 12, '--index');
    await incrementalBackup(data, join(root, 'full'), join(root, 'inc'));
    const atInc = dump('new', data);
    expect(atInc.T).not.toEqual(atFull.T);

    for (const [increments, expected] of [
      [[], atFull],
      [[join(root, 'inc')], atInc],
    ] as const) {
      for (const name of Object.keys(expected)) {
        for (const as of [name, `${name}_old`]) {
          const dest = join(tmp(), 'one');
          const r = await restoreChain(join(root, 'full'), increments, dest, {
            tables: [name],
            ...(as === name ? {} : { rename: { [name]: as } }),
          });
          const what = `${name} as ${as} after ${increments.length} increments`;
          expect(
            r.tables!.tables.map((t) => [t.name, t.as]),
            what,
          ).toEqual([[name, as]]);
          expect(r.tables!.tables[0]!.rows, what).toBe(BigInt((expected[name] as { count: number }).count));
          expect(r.tables!.catalogVersion).toBe(7);
          checkRestored('new', dest, as, expected[name], what);
        }
      }
    }
  });

  it('keeps the link and the view when their tables come too, and says what it left out', async () => {
    const data = richDb();
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    const alone = await restoreChain(backup, [], join(tmp(), 'a'), { tables: ['Doc'] });
    expect(alone.tables!.droppedLinks).toEqual(['Doc.owner_row -> Cust']);
    expect(alone.tables!.droppedViews).toEqual(['Big']); // its backing table is not restored
    const viewless = await restoreChain(backup, [], join(tmp(), 'b'), { tables: ['Big'] });
    expect(viewless.tables!.droppedViews).toEqual(['Big']);
    const dest = join(tmp(), 'c');
    const three = await restoreChain(backup, [], dest, { tables: ['Big', 'Doc', 'Cust'] });
    expect([three.tables!.droppedLinks, three.tables!.droppedViews]).toEqual([[], []]);
    expect(three.tables!.tables.map((t) => t.name)).toEqual(['Cust', 'Doc', 'Big']);
    const source = dump('new', data);
    const restored = dump('new', dest);
    expect(restored).toEqual({ Cust: source.Cust, Doc: source.Doc, Big: source.Big });
    const files = (await readdir(dest)).sort();
    expect(files.filter((f) => f.startsWith('T'))).toEqual([]);
    expect(files).toContain('views.bin');
  });

  it('restores a table of an old-generation (0.4.7) database, which the old engine then reads and writes', async () => {
    const data = makeDb('old', 60, '--index');
    fixture('old', 'add-table', data, '--table', 'U', '--rows', 25, '--index');
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    insertRows('old', data, 200, 10, 'U');
    const inc = join(tmp(), 'inc');
    await incrementalBackup(data, backup, inc);
    const source = dump('old', data);
    for (const [name, as] of [
      ['U', 'U'],
      ['U', 'V'],
      ['T', 'T2'],
    ] as const) {
      const dest = join(tmp(), 'one');
      const r = await restoreChain(backup, [inc], dest, { tables: [name], rename: name === as ? {} : { [name]: as } });
      expect(r.tables!.catalogVersion).toBe(3);
      checkRestored('old', dest, as, source[name], `old ${name} as ${as}`);
    }
  });
});

describe('restore --table from a repository', () => {
  it('restores each table at each backup, fetching only its files (local repository)', async () => {
    const data = richDb();
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const first = await repo.backup(data);
    const atFirst = dump('new', data);
    insertRows('new', data, 300, 20, 'Cust');
    fixture('new', 'workload', data, '--seed', 11, '--ops', 6, ...INSERTS_ONLY);
    const second = await repo.backup(data);
    const atSecond = dump('new', data);
    for (const [id, expected] of [
      [first.id, atFirst],
      [second.id, atSecond],
    ] as const) {
      for (const name of Object.keys(expected)) {
        const dest = join(tmp(), 'one');
        const written = new Set<string>();
        const r = await repo.restore(dest, {
          asOf: id,
          tables: [name],
          rename: { [name]: `${name}R` },
          onProgress: (p) => written.add(p.file),
        });
        expect(r.applied).toEqual([id]);
        // Fetched and written: the table's own files and the small ones, never another table's.
        const own = (f: string) => f === `${name}R.heap` || f.startsWith(`${name}R_`);
        const others = [...written].filter((f) => !own(f));
        expect(
          others.filter((f) => !['catalog.lsn', 'wal.log'].includes(f)),
          name,
        ).toEqual([]);
        expect(written.has(`${name}R.heap`)).toBe(true);
        checkRestored('new', dest, `${name}R`, expected[name], `${name} at ${id}`);
      }
    }
    repo.close();
  });

  it('at a point between backups: the whole point is restored beside the destination, then the table taken', async () => {
    const data = makeDb('new', 80, '--index');
    fixture('new', 'add-table', data, '--table', 'U', '--rows', 20, '--index');
    syncEnable(data);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    await repo.backup(data);
    insertRows('new', data, 500, 15, 'U');
    fixture('new', 'add-table', data, '--table', 'V', '--rows', 5);
    const lsn = BigInt(segments(data).last_lsn!);
    const atPoint = dump('new', data);
    insertRows('new', data, 900, 5, 'U');
    expect((await repo.archive(data)).gaps).toEqual([]);
    const parent = tmp();
    const dest = join(parent, 'one');
    const r = await repo.restore(dest, { asOf: lsn, tables: ['U'], rename: { U: 'U_then' } });
    expect(r.tables!.route).toBe('whole');
    expect(r.replay?.cut_lsn).toBe(lsn);
    expect(readdirSync(parent)).toEqual(['one']); // the scratch directory is gone
    checkRestored('new', dest, 'U_then', atPoint.U, `U at LSN ${lsn}`);
    repo.close();
  });

  it('through the CLI: --table and --rename, with a JSON summary', async () => {
    const data = richDb();
    const repoDir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(repoDir);
    await repo.backup(data);
    repo.close();
    const dest = join(tmp(), 'one');
    const r = cli('restore', '--repo', repoDir, dest, '--table', 'Doc', '--rename', 'Doc=Doc2', '--json');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.tables.tables).toEqual([{ name: 'Doc', as: 'Doc2', rows: 40, indexes: ['id', 'expr:v1:.doc->"kind"'] }]);
    expect(out.tables.dropped_links).toEqual(['Doc.owner_row -> Cust']);
    expect(dump('new', dest).Doc2).toEqual(dump('new', data).Doc);
    const text = cli('restore', '--repo', repoDir, join(tmp(), 'two'), '--table', 'Cust');
    expect(text.stdout).toMatch(/\ntables: Cust \(31 rows\); opened and verified by the PowDB engine\n/);
    const missing = cli('restore', '--repo', repoDir, join(tmp(), 'three'), '--table', 'Orders');
    expect(missing.stderr).toBe('error [ERR_NO_TABLE]: the backup has no table Orders; it has: T, Cust, Doc, Big\n');
    expect(cli('restore', '--repo', repoDir, join(tmp(), 'x'), '--rename', 'T=U').code).toBe(2);
  });
});

describe('restore --table, other sources', () => {
  it('a moment whose WAL holds records: recovered whole beside the destination first, then the table taken', async () => {
    const data = richDb();
    fixture('new', 'dirty', data, '--table', 'T', '--from', 1000, '--count', 20); // a crash image: rows in the WAL only
    const source: TableSource = {
      files: readdirSync(data)
        .filter((name) => name !== 'LOCK')
        .map((name) => ({ name, len: BigInt(statSync(join(data, name)).size) })),
      sync: undefined,
      async write(files) {
        for (const f of files) await copyFile(join(data, f.name), f.dest);
      },
    };
    expect(source.files.find((f) => f.name === 'wal.log')!.len).toBeGreaterThan(8n);
    const parent = tmp();
    const r = await restoreTables(source, join(parent, 'one'), [{ name: 'T', renameTo: 'T2' }], {});
    expect([r.route, r.tables[0]!.rows]).toEqual(['whole', 70n]);
    expect(readdirSync(parent)).toEqual(['one']);
    const restored = dump('new', join(parent, 'one')) as Record<string, { count: number; index_ok: boolean }>;
    expect([Object.keys(restored), restored.T2!.count, restored.T2!.index_ok]).toEqual([['T2'], 70, true]);
    // A destination in use is refused before anything is restored.
    let writes = 0;
    const counted = { ...source, write: async () => void writes++ };
    await rejectsWith(restoreTables(counted, join(parent, 'one'), [{ name: 'T' }], {}), 'ERR_DEST_NOT_EMPTY');
    expect(writes).toBe(0);
  });

  it('a backup of a sync-enabled database: the files route, no sync identity in the result', async () => {
    const data = makeDb('new', 40, '--index');
    fixture('new', 'add-table', data, '--table', 'U', '--rows', 10, '--index');
    syncEnable(data);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const b = await repo.backup(data);
    const dest = join(tmp(), 'one');
    const r = await repo.restore(dest, { asOf: b.id, tables: ['U'] });
    expect(r.tables!.route).toBe('files');
    expect(existsSync(join(dest, '.powdb-sync'))).toBe(false);
    checkRestored('new', dest, 'U', dump('new', data).U, 'sync-enabled U');
    repo.close();
  });

  it('a backup without index files (as an online backup recovered by redo stores it): the engine rebuilds them first; with them, the files are published as stored', async () => {
    const data = richDb();
    const bare = join(tmp(), 'bare');
    mkdirSync(bare);
    const isIndex = (name: string) => /\.(idx|eidx)$/.test(name);
    for (const name of readdirSync(data).filter((n) => n !== 'LOCK' && !isIndex(n))) {
      await copyFile(join(data, name), join(bare, name));
    }
    const expected = dump('new', data).T;
    for (const [dir, withIndexes] of [
      [data, true],
      [bare, false],
    ] as const) {
      const repo = await PackedRepository.init(join(tmp(), 'repo'));
      const b = await repo.backup(dir);
      const dest = join(tmp(), 'one');
      const r = await repo.restore(dest, { asOf: b.id, tables: ['T'] });
      repo.close();
      const what = withIndexes ? 'with index files' : 'without index files';
      expect([r.tables!.route, r.tables!.tables[0]!.indexes], what).toEqual(['files', ['id']]);
      expect(existsSync(join(dest, 'T_id.idx')), what).toBe(true);
      if (withIndexes) {
        // Checked without a write: the heap and index are the source's bytes.
        for (const name of ['T.heap', 'T_id.idx']) {
          expect(readFileSync(join(dest, name)).equals(readFileSync(join(data, name))), name).toBe(true);
        }
      }
      checkRestored('new', dest, 'T', expected, what);
    }
  });

  it('a format-1 repository restores a table through its directory chain', async () => {
    const data = richDb();
    const repo = await Repository.init(join(tmp(), 'repo1'), { format: 1 });
    await repo.backup(data);
    insertRows('new', data, 700, 10, 'Cust');
    await repo.backup(data);
    const dest = join(tmp(), 'one');
    const r = await repo.restore(dest, { tables: ['Cust'], rename: { Cust: 'C1' } });
    expect(r.applied.length).toBe(2);
    checkRestored('new', dest, 'C1', dump('new', data).Cust, 'format 1');
  });
});

describe('restore --table refusals and controls', () => {
  it('a table the backup lacks, a bad rename, --delta or another sync mode: refused, nothing published', async () => {
    const backup = join(tmp(), 'full');
    await fullBackup(richDb(), backup);
    const dest = join(tmp(), 'x');
    const e = await rejectsWith(restoreChain(backup, [], dest, { tables: ['Nope'] }), 'ERR_NO_TABLE');
    expect(e.message).toBe('the backup has no table Nope; it has: T, Cust, Doc, Big');
    await rejectsWith(restoreChain(backup, [], dest, { tables: ['T'], rename: { Cust: 'C' } }), 'ERR_INVALID_ARG');
    await rejectsWith(restoreChain(backup, [], dest, { tables: ['T'], rename: { T: '../T' } }), 'ERR_INVALID_ARG');
    await rejectsWith(
      restoreChain(backup, [], dest, { tables: ['T', 'Cust'], rename: { T: 'Cust' } }),
      'ERR_INVALID_ARG',
    );
    await rejectsWith(restoreChain(backup, [], dest, { tables: [] }), 'ERR_INVALID_ARG');
    await rejectsWith(restoreChain(backup, [], dest, { tables: ['T'], delta: true }), 'ERR_INVALID_ARG');
    await rejectsWith(restoreChain(backup, [], dest, { tables: ['T'], syncMode: 'fork' }), 'ERR_INVALID_ARG');
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(join(dest, '..'))).toEqual([]);
  });

  it('hostile input: a catalog naming a path instead of a table is refused whole, nothing written anywhere', async () => {
    const data = richDb();
    const real = readFileSync(join(data, 'catalog.bin'));
    const at = real.indexOf(Buffer.from([3, 0, 0, 0, ...Buffer.from('Big')]));
    expect(at).toBeGreaterThan(0);
    const hostile = Buffer.from(real);
    hostile.write('../', at + 4);
    hostile.writeUInt32LE(crc32(hostile.subarray(0, hostile.length - 4)), hostile.length - 4);
    const source: TableSource = {
      files: readdirSync(data).map((name) => ({ name, len: 0n })),
      sync: undefined,
      async write(files) {
        for (const f of files) {
          if (f.name === 'catalog.bin') await writeFile(f.dest, hostile);
          else await copyFile(join(data, f.name), f.dest);
        }
      },
    };
    const parent = tmp();
    const e = await rejectsWith(restoreTables(source, join(parent, 'x'), [{ name: '../' }], {}), 'ERR_UNSAFE_PATH');
    expect(e.message).toContain('table name "../" is not an identifier');
    // Even for a table of its own name: the catalog is damaged or hostile.
    await rejectsWith(restoreTables(source, join(parent, 'y'), [{ name: 'Doc' }], {}), 'ERR_UNSAFE_PATH');
    expect(readdirSync(parent)).toEqual([]);
    expect(readdirSync(join(parent, '..')).filter((n) => n.startsWith('.powdb-'))).toEqual([]);
  });

  it('negative control: a wrong table heap under the chosen name fails the engine check, nothing published', async () => {
    const data = richDb();
    const parent = tmp();
    // A source that hands T's heap where Doc's is asked for.
    const swapped = (from: string, to: string): TableSource => ({
      files: readdirSync(data).map((name) => ({ name, len: 0n })),
      sync: undefined,
      async write(files) {
        for (const f of files) await copyFile(join(data, f.name === from ? to : f.name), f.dest);
      },
    });
    const dest = join(parent, 'bad');
    const e = await rejectsWith(
      restoreTables(swapped('Doc.heap', 'T.heap'), dest, [{ name: 'Doc' }], {}),
      'ERR_ONLINE_FINALIZE',
    );
    expect(e.message).toMatch(/^(recovering|verifying|checking)/);
    expect(readdirSync(parent)).toEqual([]);
    // The same source without the swap restores: the control fails for the swap alone.
    const good = await restoreTables(swapped('none', 'none'), join(parent, 'good'), [{ name: 'Doc' }], {});
    expect(good.tables[0]!.rows).toBe(40n);
  });
});

describe('restore --table, randomized (seeded)', () => {
  /** A link pins its tables: on the database with one, the workload neither drops nor re-creates a table. */
  const variants = [
    { what: 'with link and expression index', make: richDb, skip: ['--skip', 'drop-table,recreate,drop-column'] },
    {
      what: 'tables dropped and re-created',
      make: () => {
        const dir = makeDb('new', 40, '--index');
        fixture('new', 'add-table', dir, '--table', 'U', '--rows', 20);
        fixture('new', 'big', dir, '--table', 'U', '--id', 77, '--bytes', 9000);
        return dir;
      },
      skip: [],
    },
  ];

  it('every table of a random workload restores alone, renamed or not, at each backup of a chain', async () => {
    const seed = Number(process.env.TABLE_RESTORE_SEED ?? Math.floor(Math.random() * 1_000_000));
    console.log(`table-restore randomized seed ${seed} (rerun: TABLE_RESTORE_SEED=${seed})`);
    let restored = 0;
    for (const variant of variants) {
      const data = variant.make();
      const root = tmp();
      const dirs: string[] = [];
      for (let round = 0; round < 3; round++) {
        fixture('new', 'workload', data, '--seed', seed * 10 + round, '--ops', 20, ...variant.skip);
        const dir = join(root, `b${round}`);
        if (round === 0) await fullBackup(data, dir);
        else await incrementalBackup(data, dirs, dir);
        dirs.push(dir);
        const source = dump('new', data);
        for (const [i, name] of Object.keys(source).entries()) {
          const as = (seed + i + round) % 2 === 0 ? name : `${name}_r`;
          const dest = join(tmp(), 'one');
          const what = `seed ${seed}, ${variant.what}, round ${round}: table ${name} as ${as}`;
          await restoreChain(dirs[0]!, dirs.slice(1), dest, {
            tables: [name],
            ...(as === name ? {} : { rename: { [name]: as } }),
          }).catch((err: Error) => {
            throw new Error(`${what}: ${err.message}`);
          });
          expect(dump('new', dest), what).toEqual({ [as]: source[name] });
          restored++;
        }
      }
    }
    expect(restored).toBeGreaterThanOrEqual(15);
  });
});

describe('restore --table at points between backups, randomized (seeded)', () => {
  it('each table at each random point equals that table in a whole restore of the point', async () => {
    const seed = Number(process.env.TABLE_RESTORE_SEED ?? Math.floor(Math.random() * 1_000_000));
    console.log(`table-restore point-in-time seed ${seed} (rerun: TABLE_RESTORE_SEED=${seed})`);
    const data = makeDb('new', 40, '--index');
    fixture('new', 'add-table', data, '--table', 'U', '--rows', 15, '--index');
    syncEnable(data);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const backupLsns = [(await repo.backup(data)).source_lsn];
    // A replay never crosses an alter table add column (refused for an explicit target): none here.
    const skip = ['--skip', 'add-column,add-int-column,add-str-column,drop-column'];
    const points: bigint[] = [];
    for (let round = 0; round < 3; round++) {
      fixture('new', 'workload', data, '--seed', seed * 10 + round, '--ops', 10, ...skip);
      points.push(BigInt(segments(data).last_lsn!));
      if (round === 1) backupLsns.push((await repo.backup(data)).source_lsn);
    }
    expect((await repo.archive(data)).gaps).toEqual([]);
    let checked = 0;
    for (const [round, lsn] of points.entries()) {
      const whole = join(tmp(), 'whole');
      await repo.restore(whole, { asOf: lsn });
      const expected = dump('new', whole);
      for (const [i, name] of Object.keys(expected).entries()) {
        const as = (seed + i + round) % 2 === 0 ? name : `${name}_at`;
        const what = `seed ${seed}, point ${lsn}: table ${name} as ${as}`;
        const dest = join(tmp(), 'one');
        const r = await repo
          .restore(dest, { asOf: lsn, tables: [name], ...(as === name ? {} : { rename: { [name]: as } }) })
          .catch((err: Error) => {
            throw new Error(`${what}: ${err.message}`);
          });
        expect(r.sourceLsn, what).toBe(lsn);
        expect(r.tables!.route, what).toBe(backupLsns.includes(lsn) ? 'files' : 'whole');
        expect(dump('new', dest), what).toEqual({ [as]: expected[name] });
        checked++;
      }
    }
    expect(checked, `seed ${seed}`).toBeGreaterThan(0); // the workload may drop tables
    repo.close();
  });
});

describe('restore --table crash safety', () => {
  const CHILD = join(import.meta.dirname, 'crash-child.mjs');
  /** Runs a table restore in a child, SIGKILLed at `crashAt` (a crash point) or after `killAfterMs`. */
  async function killed(args: string[], crashAt: string, killAfterMs?: number): Promise<void> {
    const env = { ...process.env, POWDB_BACKUP_CRASH_AT: crashAt };
    const child = spawn(process.execPath, [CHILD, 'restore-table', ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    if (code !== 0 && signal !== 'SIGKILL') throw new Error(`child failed (${code}): ${stderr}`);
  }

  it('killed at every boundary or at random: never a half-restored directory; the rerun finishes and cleans up', async () => {
    const data = richDb();
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    const source = dump('new', data);
    const points = ['file-done:1', 'table-files-written:1', 'table-finalized:1', 'staging-synced:1', 'renamed:1'];
    const random = Array.from({ length: 6 }, (_, i) => 40 + i * 60);
    for (const [crashAt, after] of [
      ...points.map((p) => [p, undefined] as const),
      ...random.map((ms) => ['', ms] as const),
    ]) {
      const parent = tmp();
      const dest = join(parent, 'one');
      await killed([backup, dest, 'Doc'], crashAt, after);
      const what = `killed at ${crashAt || `${after} ms`}`;
      if (existsSync(dest)) {
        // Published: then it is whole, opened and verified before the rename.
        expect(dump('new', dest), what).toEqual({ Doc: source.Doc });
        continue;
      }
      await restoreChain(backup, [], dest, { tables: ['Doc'] });
      expect(dump('new', dest), what).toEqual({ Doc: source.Doc });
      expect(readdirSync(parent), what).toEqual(['one']);
    }
  });
});
