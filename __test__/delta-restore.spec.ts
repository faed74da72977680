// Delta restore (--delta): an existing data directory of the same database
// brought to a backup's state by rewriting only what differs, ending
// byte-identical to a plain restore, and safe to kill at any moment.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, incrementalBackup, restoreChain } from '../index.js';
import {
  CLI,
  FIXTURE,
  GENS,
  dataHashes,
  dump,
  fixture,
  insertRows,
  makeDb,
  rejectsWith,
  tmp,
  type Gen,
} from './helpers.js';

const PAGE = 4096;

/** A chain (full + increment, U dropped in between) and a plain restore of it to compare with. */
async function chainAndPlain(gen: Gen) {
  const data = makeDb(gen, 20_000, '--index');
  fixture(gen, 'add-table', data, '--table', 'U', '--rows', 200);
  const root = tmp();
  const full = join(root, 'full');
  await fullBackup(data, full);
  insertRows(gen, data, 20_000, 200); // 1% more rows
  fixture(gen, 'update', data, '--every', 997);
  fixture(gen, 'drop-table', data, '--table', 'U');
  const inc = join(root, 'inc');
  await incrementalBackup(data, full, inc);
  const plain = join(root, 'plain');
  await restoreChain(full, [inc], plain);
  return { data, full, inc, plain };
}

/** Flips one byte in each of `pages` of `file`. */
function damage(file: string, pages: number[]): void {
  const bytes = readFileSync(file);
  for (const p of pages) bytes.writeUInt8(bytes.readUInt8(p * PAGE + 200) ^ 0xff, p * PAGE + 200);
  writeFileSync(file, bytes);
}

describe.each(GENS)('delta restore (engine %s)', (gen) => {
  it('rewrites only what differs and ends byte-identical to a plain restore', async () => {
    const { full, inc, plain } = await chainAndPlain(gen);
    // A stale standby: yesterday's restore (still holding U), with a damaged page and a stray note.
    const dest = join(tmp(), 'standby');
    await restoreChain(full, [], dest);
    damage(join(dest, 'T.heap'), [2]);
    writeFileSync(join(dest, 'notes.txt'), 'not ours');
    // A killed run's temporary copy is started afresh (CI caught a rerun refusing one).
    const idx = readdirSync(dest).find((n) => n.endsWith('.idx'))!;
    writeFileSync(join(dest, `.powdb-delta-restore.${idx}`), 'left by a killed run');
    const r = await restoreChain(full, [inc], dest, { delta: true });
    expect(readdirSync(dest).filter((n) => n.startsWith('.powdb-delta'))).toEqual([]);
    const expected = dataHashes(plain);
    expect({ ...dataHashes(dest), 'notes.txt': undefined }).toEqual({ ...expected, 'notes.txt': undefined });
    expect(readFileSync(join(dest, 'notes.txt'), 'utf8')).toBe('not ours'); // only durable files are touched
    expect(existsSync(join(dest, '.powdb-delta-restore'))).toBe(false);
    const heapPages = BigInt(readFileSync(join(plain, 'T.heap')).length / PAGE);
    expect(r.delta!.pagesCompared).toBeGreaterThan(heapPages / 2n);
    expect(r.delta!.pagesRewritten).toBeGreaterThan(0n);
    expect(r.delta!.pagesRewritten).toBeLessThan(heapPages / 5n);
    expect(r.delta!.filesRemoved).toBeGreaterThanOrEqual(1); // U.heap
    expect(dump(gen, dest)).toEqual(dump(gen, plain));

    // Run again on the result: nothing to rewrite but the catalog (always put back last).
    const again = await restoreChain(full, [inc], dest, { delta: true });
    expect(again.delta!.pagesRewritten).toBe(0n);
    expect(again.delta!.filesRewritten).toBe(1);
    expect(dataHashes(dest)).toEqual({ ...expected, 'notes.txt': dataHashes(dest)['notes.txt'] });
  });

  it('an absent or empty destination gets a plain restore; refuses what is not a data directory unless forced', async () => {
    const { full, inc, plain } = await chainAndPlain(gen);
    const fresh = join(tmp(), 'fresh');
    expect((await restoreChain(full, [inc], fresh, { delta: true })).delta).toBeUndefined();
    expect(dataHashes(fresh)).toEqual(dataHashes(plain));

    const other = tmp();
    writeFileSync(join(other, 'something.txt'), 'x');
    const err = await rejectsWith(restoreChain(full, [inc], other, { delta: true }), 'ERR_NOT_A_DATA_DIR');
    expect(err.message).toContain('--force');
    await restoreChain(full, [inc], other, { delta: true, force: true });
    expect({ ...dataHashes(other), 'something.txt': undefined }).toEqual({
      ...dataHashes(plain),
      'something.txt': undefined,
    });
    await rejectsWith(restoreChain(full, [inc], fresh, { delta: true, syncMode: 'fork' }), 'ERR_INVALID_ARG');
  });
});

describe.each(GENS)('delta restore from a format-2 repository (engine %s)', (gen) => {
  it('fetches and writes only what differs, ending byte-identical to a plain restore', async () => {
    // Heap runs are 64 KiB: a few updates far apart, and 1% more rows at the end.
    const data = makeDb(gen, 50_000, '--index');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 200);
    const repo = await PackedRepository.init(join(tmp(), 'repo'), { compression: 'none' });
    const older = await repo.backup(data);
    insertRows(gen, data, 50_000, 500);
    fixture(gen, 'update', data, '--every', 24_989);
    fixture(gen, 'drop-table', data, '--table', 'U');
    const newer = await repo.backup(data);
    const plain = join(tmp(), 'plain');
    await repo.restore(plain, { asOf: newer.id });

    const dest = join(tmp(), 'standby');
    await repo.restore(dest, { asOf: older.id });
    damage(join(dest, 'T.heap'), [1]);
    // A killed run's temporary copy is started afresh (CI caught a rerun refusing one).
    const idx = readdirSync(dest).find((n) => n.endsWith('.idx'))!;
    writeFileSync(join(dest, `.powdb-delta-restore.${idx}`), 'left by a killed run');
    const r = await repo.restore(dest, { asOf: newer.id, delta: true });
    expect(readdirSync(dest).filter((n) => n.startsWith('.powdb-delta'))).toEqual([]);
    expect(dataHashes(dest)).toEqual(dataHashes(plain));
    expect(dump(gen, dest)).toEqual(dump(gen, plain));
    const d = r.delta!;
    expect(d.filesRemoved).toBeGreaterThanOrEqual(1); // U.heap
    expect(d.pagesRewritten).toBeGreaterThan(0n);
    // Fetched: the changed heap runs and what the index changed, far less than the database.
    expect(d.bytesFetched).toBeLessThan(newer.logical_bytes / 4n);
    expect(d.bytesWritten).toBeLessThan(newer.logical_bytes / 2n);
    const again = await repo.restore(dest, { asOf: newer.id, delta: true });
    expect(again.delta!.pagesRewritten).toBe(0n);
    expect(again.delta!.bytesFetched).toBeLessThan(64n << 10n); // the catalog, put back last
    repo.close();
  });
});

describe('delta restore and a live server (engine new)', () => {
  it('refuses a destination whose LOCK a live process holds', async () => {
    const { full, inc } = await chainAndPlain('new');
    const dest = join(tmp(), 'live');
    await restoreChain(full, [], dest);
    const server = spawn(FIXTURE, ['hold', dest, '--gen', 'new'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(createInterface({ input: server.stdout! }), 'line');
    try {
      await rejectsWith(restoreChain(full, [inc], dest, { delta: true }), 'ERR_LOCKED');
      expect(existsSync(join(dest, 'catalog.bin'))).toBe(true);
    } finally {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
  });
});

/** The state letter of process `pid` (R, S, Z, ...) from /proc/<pid>/stat. */
const procState = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.slice(0, 1);

describe('a delta restore rerun right after a kill -9 (engine new)', () => {
  it('is not refused by the LOCK of the killed run while that is a zombie, and a live server still refuses it', async () => {
    const { full, inc, plain } = await chainAndPlain('new');
    const dest = join(tmp(), 'standby');
    await restoreChain(full, [], dest);
    const args = [CLI, 'restore', full, dest, '--apply', inc, '--delta', '--quiet'];
    const env = { ...process.env, POWDB_BACKUP_CRASH_AT: 'delta-marked:1' };
    // No await from here to the rerun: node reaps a child only from its event
    // loop, so the killed run stays a zombie while its PID is in LOCK.
    const killed = spawn(process.execPath, args, { env, stdio: 'ignore' });
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + 60_000;
    while (procState(killed.pid!) !== 'Z') {
      expect(Date.now(), 'the killed run never became a zombie').toBeLessThan(deadline);
      Atomics.wait(nap, 0, 0, 10);
    }
    expect(readFileSync(join(dest, 'LOCK'), 'utf8')).toBe(String(killed.pid));
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(procState(killed.pid!)).toBe('Z');
    expect(rerun.stderr).not.toMatch(/ERR_LOCKED/);
    expect(rerun.status, rerun.stderr).toBe(0);
    await once(killed, 'exit');
    expect(dataHashes(dest)).toEqual(dataHashes(plain));

    // A live server still holds it: the engine's own LOCK.
    const server = spawn(FIXTURE, ['hold', dest, '--gen', 'new'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(createInterface({ input: server.stdout! }), 'line');
    try {
      await rejectsWith(restoreChain(full, [inc], dest, { delta: true }), 'ERR_LOCKED');
    } finally {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
  }, 120_000);
});

/** A delta restore to kill: the CLI arguments, a stale copy to run it on, and the plain result. */
interface KillCase {
  args: (dest: string) => string[];
  stale: (dest: string) => Promise<void>;
  plain: string;
}

async function chainCase(): Promise<KillCase> {
  const { full, inc, plain } = await chainAndPlain('new');
  return {
    args: (dest) => [CLI, 'restore', full, dest, '--apply', inc, '--delta', '--quiet'],
    stale: async (dest) => void (await restoreChain(full, [], dest)),
    plain,
  };
}

async function repositoryCase(): Promise<KillCase> {
  const data = makeDb('new', 50_000, '--index');
  fixture('new', 'add-table', data, '--table', 'U', '--rows', 200);
  const dir = join(tmp(), 'repo');
  const repo = await PackedRepository.init(dir);
  const older = await repo.backup(data);
  insertRows('new', data, 50_000, 500);
  fixture('new', 'drop-table', data, '--table', 'U');
  const newer = await repo.backup(data);
  const plain = join(tmp(), 'plain');
  await repo.restore(plain, { asOf: newer.id });
  repo.close();
  return {
    args: (dest) => [CLI, 'restore', '--repo', dir, dest, '--as-of', newer.id, '--delta', '--quiet'],
    stale: async (dest) => {
      const r = await PackedRepository.open(dir);
      await r.restore(dest, { asOf: older.id });
      r.close();
    },
    plain,
  };
}

describe.each([
  ['a directory chain', chainCase],
  ['a repository', repositoryCase],
] as const)('a killed delta restore from %s (engine new)', (_what, make) => {
  const points = [
    'delta-marked',
    'delta-catalog-removed',
    'file-done:1',
    'file-done:3',
    'delta-files-done',
    'delta-catalog-written',
  ];
  it('never leaves a directory the engine opens half-restored, and the rerun ends byte-identical', async () => {
    const c = await make();
    const expected = dataHashes(c.plain);
    const kills = [...points, ...[15, 40, 90].map((ms) => `after:${ms}`)];
    for (const kill of kills) {
      const dest = join(tmp(), 'standby');
      await c.stale(dest);
      const stale = dataHashes(dest);
      const args = c.args(dest);
      let signal: NodeJS.Signals | null;
      if (kill.startsWith('after:')) {
        const child = spawn(process.execPath, args, { stdio: 'ignore' });
        await new Promise((r) => setTimeout(r, Number(kill.slice(6))));
        child.kill('SIGKILL');
        [, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      } else {
        const [point, n] = kill.split(':');
        const env = { ...process.env, POWDB_BACKUP_CRASH_AT: `${point}:${n ?? 1}` };
        signal = spawnSync(process.execPath, args, { env, encoding: 'utf8' }).signal;
        expect(signal, kill).toBe('SIGKILL');
      }
      const { '.powdb-delta-restore': _marker, ...now } = dataHashes(dest);
      if (existsSync(join(dest, 'catalog.bin'))) {
        // A catalog is there only before any file changed, or once every other file is final.
        expect([stale, expected], `${kill} (${signal})`).toContainEqual(now);
      } else {
        const open = spawnSync(FIXTURE, ['report', dest, '--gen', 'new'], { encoding: 'utf8' });
        expect(open.status, `${kill}: the engine opened a half-restored directory`).not.toBe(0);
      }
      const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
      expect(rerun.status, `${kill}: ${rerun.stderr}`).toBe(0);
      expect(readdirSync(dest).filter((n) => n.startsWith('.powdb-delta'))).toEqual([]);
      expect(dataHashes(dest), kill).toEqual(expected);
    }
  }, 120_000);
});
