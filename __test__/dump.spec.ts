// `powdb-backup dump`: the rows of one table of a backup or point in time, as JSON Lines and CSV, against the
// engine's own reading of that table (fixture `rows`: every value exact). Tables hold every PowDB type, Empty
// cells, overflow values, and text that needs quoting and escaping (commas, quotes, CR/LF, non-ASCII, JSON).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PackedRepository,
  Repository,
  chainDump,
  fullBackup,
  incrementalBackup,
  type DumpFormat,
  type ProgressEvent,
} from '../index.js';
import {
  ROOT,
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
import { engineRows, expectSameRows, fromCsv, fromJsonl, readDump, type EngineRows } from './dump-read.js';

/** richDb plus `Typed` (every type): T, Cust (an overflow row), Doc (JSON, overflow notes), Big, Typed. */
function typedDb(): string {
  const data = richDb();
  fixture('new', 'typed', data, '--rows', 60);
  return data;
}

const TABLES = ['T', 'Cust', 'Doc', 'Big', 'Typed'];
const FORMATS = ['jsonl', 'csv'] as const;

describe('dump from a directory chain', () => {
  it('writes each table, in both formats, exactly as the engine reads it, at the full backup and after an increment', async () => {
    const data = typedDb();
    const root = tmp();
    await fullBackup(data, join(root, 'full'));
    const atFull = Object.fromEntries(TABLES.map((t) => [t, engineRows(data, t)]));
    insertRows('new', data, 100, 40);
    fixture('new', 'big', data, '--table', 'T', '--id', 5000, '--bytes', 7000);
    await incrementalBackup(data, join(root, 'full'), join(root, 'inc'));
    const atInc = engineRows(data, 'T');
    expect(atInc.rows.length).toBe(atFull.T!.rows.length + 41);

    for (const table of TABLES) {
      for (const format of FORMATS) {
        const out = join(tmp(), `${table}.${format}`);
        const r = await chainDump(join(root, 'full'), [], { table, format, output: out });
        const engine = atFull[table]!;
        expect([r.table, r.format, r.rows, r.route, r.output]).toEqual([
          table,
          format,
          BigInt(engine.rows.length),
          'files',
          out,
        ]);
        expect(r.bytes).toBe(BigInt(readFileSync(out).length));
        expectSameRows(readDump(out, format, engine.columns), engine, `${table} as ${format}`);
      }
    }
    const typed = atFull.Typed!;
    expect(typed.rows.flat()).toContain('9223372036854775807');
    expect(typed.rows.some((row) => typeof row[4] === 'string' && row[4].length > 9000)).toBe(true); // overflow

    for (const format of FORMATS) {
      const out = join(tmp(), `T-inc.${format}`);
      const events: ProgressEvent[] = [];
      const onProgress = (e: ProgressEvent) => events.push(e);
      await chainDump(join(root, 'full'), [join(root, 'inc')], { table: 'T', format, output: out, onProgress });
      // The heap fetched, then read for the rows: the events end at the totals.
      const heapBytes = BigInt(statSync(join(data, 'T.heap')).size);
      expect(events.at(-1)).toEqual({
        operation: 'dump',
        file: 'T rows',
        filesDone: 2,
        filesTotal: 2,
        bytesDone: 2n * heapBytes,
        bytesTotal: 2n * heapBytes,
      });
      const rows = readDump(out, format, atInc.columns);
      expectSameRows(rows, atInc, `T after the increment as ${format}`);
      // Negative control: the full backup's T is not what the increment holds.
      expect(() => expectSameRows(rows, atFull.T!, 'T at the full backup')).toThrow();
    }
  });

  it('dumps an old-generation chain (PowDB 0.4, catalog version 3)', async () => {
    const data = makeDb('old', 30, '--index');
    fixture('old', 'add-table', data, '--table', 'U', '--rows', 7);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    for (const table of ['T', 'U']) {
      const engine = engineRows(data, table, 'old');
      for (const format of FORMATS) {
        const out = join(tmp(), `${table}.${format}`);
        const r = await chainDump(full, [], { table, format, output: out });
        expect(r.rows).toBe(BigInt(engine.rows.length));
        expectSameRows(readDump(out, format, engine.columns), engine, `old ${table} as ${format}`);
      }
    }
  });

  it('through the CLI: stdout by default, a new file with --output, clear errors, never a half file', async () => {
    const data = typedDb();
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    const engine = engineRows(data, 'Typed');
    for (const format of FORMATS) {
      const r = cli('dump', full, '--table', 'Typed', '--format', format);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const dumped = format === 'jsonl' ? fromJsonl(r.stdout, engine.columns) : fromCsv(r.stdout, engine.columns);
      expectSameRows(dumped, engine, `Typed on stdout as ${format}`);
    }

    const dir = tmp();
    const out = join(dir, 'typed.csv');
    const written = cli('dump', full, '--table', 'Typed', '--format', 'csv', '--output', out, '--json');
    expect(written.code).toBe(0);
    expect(JSON.parse(written.stdout)).toMatchObject({ table: 'Typed', format: 'csv', rows: 60, output: out });
    expect(readdirSync(dir)).toEqual(['typed.csv']); // no temporary file, no scratch directory left

    const again = cli('dump', full, '--table', 'Typed', '--output', out);
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('error [ERR_DEST_NOT_EMPTY]: dump output')]);
    const missing = cli('dump', full, '--table', 'Nope', '--output', join(dir, 'nope.jsonl'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'error [ERR_NO_TABLE]: the backup has no table Nope; it has: T, Cust, Doc, Big, Typed\n',
    );
    expect(readdirSync(dir)).toEqual(['typed.csv']);
    for (const hostile of ['../T', 'T/../T', '/etc/passwd', 'T.heap']) {
      const r = cli('dump', full, '--table', hostile, '--output', join(dir, 'h.jsonl'));
      expect([r.code, r.stderr.split(':')[0]], hostile).toEqual([1, 'error [ERR_NO_TABLE]']);
    }
    expect(readdirSync(dir)).toEqual(['typed.csv']);
    expect(cli('dump', full, '--table', 'T', '--format', 'xml').code).toBe(2);
    expect(cli('dump', full, '--table', 'T', '--json').code).toBe(2);
    await rejectsWith(chainDump(full, [], { table: 'T', output: out }), 'ERR_DEST_NOT_EMPTY');
  });
});

describe('dump from a repository', () => {
  it('at each backup and at a point between backups, as the engine reads the table then', async () => {
    const data = makeDb('new', 80, '--index');
    fixture('new', 'typed', data, '--rows', 30);
    syncEnable(data);
    const repoDir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(repoDir);
    const first = await repo.backup(data);
    const atFirst = engineRows(data, 'T');
    const typedAtFirst = engineRows(data, 'Typed');
    insertRows('new', data, 500, 15);
    const lsn = BigInt(segments(data).last_lsn!);
    const atPoint = engineRows(data, 'T');
    insertRows('new', data, 900, 5);
    expect((await repo.archive(data)).gaps).toEqual([]);
    repo.close();

    const reader = await Repository.open(repoDir);
    for (const format of FORMATS) {
      const out = join(tmp(), `typed.${format}`);
      const r = await reader.dump({ asOf: first.id, table: 'Typed', format, output: out });
      expect([r.backup, r.lsn, r.route]).toEqual([first.id, first.source_lsn, 'files']);
      expectSameRows(readDump(out, format, typedAtFirst.columns), typedAtFirst, `Typed at ${first.id} as ${format}`);
    }
    const parent = tmp();
    const out = join(parent, 't.jsonl');
    const point = await reader.dump({ asOf: lsn, table: 'T', output: out });
    expect([point.lsn, point.route, point.rows]).toEqual([lsn, 'whole', BigInt(atPoint.rows.length)]);
    expect(readdirSync(parent)).toEqual(['t.jsonl']); // the scratch directory is gone
    const rows = readDump(out, 'jsonl', atPoint.columns);
    expectSameRows(rows, atPoint, `T at LSN ${lsn}`);
    // Negative control: the backup's T (before the point's inserts) is not the point's.
    const atBackup = join(tmp(), 't.jsonl');
    await reader.dump({ asOf: first.id, table: 'T', output: atBackup });
    expectSameRows(readDump(atBackup, 'jsonl', atFirst.columns), atFirst, `T at ${first.id}`);
    expect(() => expectSameRows(rows, atFirst, 'T at the backup')).toThrow();
    const e = await rejectsWith(reader.dump({ table: 'Nope', output: join(parent, 'x') }), 'ERR_NO_TABLE');
    expect(e.message).toBe('the backup has no table Nope; it has: T, Typed');
    expect(existsSync(join(parent, 'x'))).toBe(false);
    reader.close();

    const text = cli('dump', '--repo', repoDir, '--as-of', first.id, '--table', 'T', '--format', 'csv');
    expect(text.code).toBe(0);
    expectSameRows(fromCsv(text.stdout, atFirst.columns), atFirst, 'T through the CLI');
  });

  it('from a format-1 repository (directory chains), at each backup', async () => {
    const data = makeDb('new', 30, '--index');
    const repo = await Repository.init(join(tmp(), 'old'), { format: 1 });
    const first = await repo.backup(data);
    const atFirst = engineRows(data, 'T');
    insertRows('new', data, 100, 12);
    const second = await repo.backup(data);
    const atSecond = engineRows(data, 'T');
    for (const [id, expected] of [
      [first.id, atFirst],
      [second.id, atSecond],
    ] as const) {
      const out = join(tmp(), 't.csv');
      const r = await repo.dump({ asOf: id, table: 'T', format: 'csv', output: out });
      expect([r.backup, r.rows]).toEqual([id, BigInt(expected.rows.length)]);
      expectSameRows(readDump(out, 'csv', expected.columns), expected, `T at ${id}`);
    }
    repo.close();
  });
});

/** The peak RSS (bytes) of a process that dumps `table` of the backup `full` into `out`. */
function dumpRss(full: string, table: string, out: string): number {
  const script = `
    const { chainDump } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
    await chainDump(${JSON.stringify(full)}, [], { table: ${JSON.stringify(table)}, output: ${JSON.stringify(out)} });
    process.stdout.write(String(process.resourceUsage().maxRSS * 1024));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('dump memory', () => {
  it('stays bounded: a 64 MiB table costs no more memory than a tiny one', async () => {
    const data = join(tmp(), 'data');
    fixture('new', 'bulk', data, '--mib', 64);
    fixture('new', 'add-table', data, '--table', 'Small', '--rows', 10);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    expect(statSync(join(full, 'T.heap')).size).toBeGreaterThan(64 << 20);
    const dir = tmp();
    const small = dumpRss(full, 'Small', join(dir, 'small.jsonl'));
    const big = dumpRss(full, 'T', join(dir, 'big.jsonl'));
    expect(statSync(join(dir, 'big.jsonl')).size).toBeGreaterThan(64 << 20);
    // The heap is read a page at a time (never mapped whole), the rows one at a time.
    expect(big - small, `peak RSS ${small} then ${big}`).toBeLessThan(24 << 20);

    // Aborted midway: ERR_ABORTED, and neither the output nor a temporary file nor the scratch directory is left.
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const aborted = chainDump(full, [], { table: 'T', output: join(dir, 'aborted.jsonl'), signal: controller.signal });
    await rejectsWith(aborted, 'ERR_ABORTED');
    expect(readdirSync(dir).sort()).toEqual(['big.jsonl', 'small.jsonl']);
  }, 120_000);
});

describe('dump, randomized (seeded)', () => {
  it('every table of a random workload, at each backup of a chain and at points between backups', async () => {
    const seed = Number(process.env.DUMP_SEED ?? Math.floor(Math.random() * 1_000_000));
    console.log(`dump randomized seed ${seed} (rerun: DUMP_SEED=${seed})`);
    const database = () => {
      const dir = makeDb('new', 40, '--index');
      fixture('new', 'add-table', dir, '--table', 'U', '--rows', 20);
      fixture('new', 'big', dir, '--table', 'U', '--id', 77, '--bytes', 9000);
      fixture('new', 'typed', dir, '--rows', 25);
      return dir;
    };
    const data = database();
    const root = tmp();
    const dirs: string[] = [];
    let checked = 0;
    const check = async (
      rows: EngineRows,
      what: string,
      run: (out: string, format: DumpFormat) => Promise<unknown>,
    ) => {
      const format = FORMATS[(seed + checked) % 2]!;
      const out = join(tmp(), `dump.${format}`);
      await run(out, format).catch((err: Error) => {
        throw new Error(`${what}: ${err.message}`);
      });
      expectSameRows(readDump(out, format, rows.columns), rows, `${what} as ${format}`);
      checked++;
    };
    for (let round = 0; round < 3; round++) {
      fixture('new', 'workload', data, '--seed', seed * 10 + round, '--ops', 20);
      const dir = join(root, `b${round}`);
      if (round === 0) await fullBackup(data, dir);
      else await incrementalBackup(data, dirs, dir);
      dirs.push(dir);
      for (const table of Object.keys(dump('new', data))) {
        await check(engineRows(data, table), `seed ${seed}, round ${round}: ${table}`, (output, format) =>
          chainDump(dirs[0]!, dirs.slice(1), { table, format, output }),
        );
      }
    }

    const inChain = checked;
    // Points between backups of a repository, each against a whole restore of the point. The database is
    // sync-enabled from the start and holds no overflow values (powdb-sync 0.29 cannot archive a WAL that does).
    const synced = makeDb('new', 40, '--index');
    fixture('new', 'add-table', synced, '--table', 'U', '--rows', 15, '--index');
    syncEnable(synced);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    await repo.backup(synced);
    const skip = ['--skip', 'add-column,add-int-column,add-str-column,drop-column']; // a replay stops at those
    const points: bigint[] = [];
    for (let round = 0; round < 2; round++) {
      fixture('new', 'workload', synced, '--seed', seed * 10 + 5 + round, '--ops', 10, ...skip);
      points.push(BigInt(segments(synced).last_lsn!));
    }
    expect((await repo.archive(synced)).gaps).toEqual([]);
    for (const lsn of points) {
      const whole = join(tmp(), 'whole');
      await repo.restore(whole, { asOf: lsn });
      for (const table of Object.keys(dump('new', whole))) {
        await check(engineRows(whole, table), `seed ${seed}, point ${lsn}: ${table}`, (output, format) =>
          repo.dump({ asOf: lsn, table, format, output }),
        );
      }
    }
    repo.close();
    // Not blind: each part checked tables (how many depends on the seed: the workload drops and creates tables;
    // seed 424399 left one table for two of the three backups).
    expect(inChain, `seed ${seed}`).toBeGreaterThanOrEqual(3);
    expect(checked - inChain, `seed ${seed}`).toBeGreaterThanOrEqual(2);
  }, 300_000);
});
