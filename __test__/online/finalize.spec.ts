// The finalize step of an online backup: the staged copy (heaps and wal.log,
// no index files, no LOCK) recovered by the real engine linked in the addon,
// checkpointed and verified. Sources are crash images the engine fixture makes,
// and a live powdb-server 0.29.0 copied while stopped with SIGSTOP; the
// reference is the fixture's dump of the source after its own recovery.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChainState } from '../../lib/chain/chain.js';
import { liveServerFor } from '../../lib/chain/online-route.js';
import { engineNative } from '../../lib/native/engine.js';
import { dump, fixture, makeDb, rejectsWith, tmp, tree } from '../helpers.js';
import { startPowdbServer, type User } from '../powdb-server.js';

const PAGE = 4096;
const EMPTY_WAL = Buffer.from('PWAL\x01\x00\x00\x00', 'latin1');
const APP: User = { name: 'app', role: 'readwrite', password: 'app-pw' };

/** The part of a table's fixture `dump` read here. */
type TableDump = { count: number; indexes: string[]; index_ok: boolean };

/** What the online copy stages: every file of the data directory but index files, locks and readers. */
function stage(from: string, to: string): string {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    if (/\.(idx|eidx)$/.test(name) || name === 'LOCK' || name === 'readers' || name === '.powdb-sync') continue;
    copyFileSync(join(from, name), join(to, name));
  }
  return to;
}

/** A source whose last 150 inserts are committed in its WAL only (the fixture's `dirty`: no checkpoint, no Drop). */
function crashedSource(): string {
  const src = makeDb('new', 400, '--index');
  fixture('new', 'workload', src, '--seed', 11, '--ops', 10, '--skip', 'drop-table,add-column,drop-column');
  fixture('new', 'dirty', src, '--from', 100_000, '--count', 150);
  return src;
}

function counts(tables: { name: string; rows: bigint }[]): Record<string, number> {
  return Object.fromEntries(tables.map((t) => [t.name, Number(t.rows)]));
}

describe('online finalize (engine 0.29 in the addon)', () => {
  it('recovers a crash image without its index files: every committed row, every index, an empty WAL', async () => {
    const src = crashedSource();
    const parent = tmp();
    const staged = stage(src, join(parent, 'staged'));
    expect(statSync(join(staged, 'wal.log')).size).toBeGreaterThan(EMPTY_WAL.length);

    const done = await engineNative.finalize(staged);

    const reference = dump('new', src) as Record<string, TableDump>;
    expect(dump('new', staged)).toEqual(reference);
    expect(counts(done.tables)).toEqual(Object.fromEntries(Object.entries(reference).map(([t, d]) => [t, d.count])));
    for (const t of done.tables) expect(t.indexes).toEqual(reference[t.name]!.indexes);
    expect(Object.values(reference).every((d) => d.index_ok)).toBe(true);
    expect(readFileSync(join(staged, 'wal.log'))).toEqual(EMPTY_WAL);
    expect(tree(staged).filter((n) => n === 'LOCK' || n.startsWith('readers') || n.includes('.tmp'))).toEqual([]);
    expect(tree(staged)).toContain('T_id.idx');
    expect(readdirSync(parent)).toEqual(['staged']);
    expect(done.maxLsn).toBeGreaterThan(0n);
    expect(done.catalogVersion).toBe(5);
  });

  it('by our redo: the same rows with no index file kept, which the engine rebuilds at its first open', async () => {
    const src = crashedSource();
    const staged = stage(src, join(tmp(), 'staged'));

    const done = await engineNative.finalize(staged, undefined, 'redo');

    expect(done.route).toBe('redo');
    expect(tree(staged).filter((n) => /\.e?idx$/.test(n))).toEqual([]);
    expect(readFileSync(join(staged, 'wal.log'))).toEqual(EMPTY_WAL);
    const reference = dump('new', src) as Record<string, TableDump>;
    expect(counts(done.tables)).toEqual(Object.fromEntries(Object.entries(reference).map(([t, d]) => [t, d.count])));
    // The fixture's dump opens the copy with the engine, which rebuilds every index (in memory) and checks it.
    expect(dump('new', staged)).toEqual(reference);
  });

  it('an online increment on a chain holding index files is recovered by the engine, unless a route was chosen', () => {
    const state = (names: string[]) => ({ lengths: new Map(names.map((n) => [n, 1n])) }) as unknown as ChainState;
    const server = { host: '127.0.0.1', port: 1 };
    expect(liveServerFor(state(['T.heap', 'T_id.idx']), server)?.finalize).toBe('engine');
    expect(liveServerFor(state(['T.heap', 'T_1.eidx']), { ...server, finalize: 'auto' })?.finalize).toBe('engine');
    expect(liveServerFor(state(['T.heap', 'T_id.idx']), { ...server, finalize: 'redo' })?.finalize).toBe('redo');
    expect(liveServerFor(state(['T.heap', 'catalog.bin']), server)?.finalize).toBeUndefined();
    expect(liveServerFor(state(['T_id.idx']), undefined)).toBeUndefined();
  });

  it('recovers a live server copied while stopped with SIGSTOP, its WAL not yet checkpointed', async () => {
    const server = await startPowdbServer({ users: [APP] });
    const q = (powql: string) => server.query(APP.name, APP.password, powql);
    await q('type Acct { required unique id: int, bal: int }');
    for (let id = 1; id <= 6; id++) await q(`insert Acct { id := ${id}, bal := ${id * 100} }`);
    await q('Acct filter .id = 2 update { bal := 7 }');
    await q('Acct filter .id = 5 delete');
    server.pause();
    let staged: string;
    try {
      staged = stage(server.dataDir, join(tmp(), 'staged'));
    } finally {
      server.resume();
    }
    expect(statSync(join(staged, 'wal.log')).size, 'the copy needs replay').toBeGreaterThan(EMPTY_WAL.length);

    const done = await engineNative.finalize(staged, [{ table: 'Acct', rows: 5n }]);

    expect(done.tables).toEqual([{ name: 'Acct', rows: 5n, indexes: ['id'] }]);
    expect(await q('count(Acct)')).toEqual({ value: 5 });
    expect(readFileSync(join(staged, 'wal.log'))).toEqual(EMPTY_WAL);
    expect(tree(staged)).not.toContain('LOCK');
  });

  it('fails on a torn heap page, naming table and page (negative control)', async () => {
    const staged = stage(crashedSource(), join(tmp(), 'staged'));
    const heap = join(staged, 'T.heap');
    const bytes = readFileSync(heap);
    expect(bytes.length).toBeGreaterThanOrEqual(4 * PAGE);
    // Half of page 3 over page 2: a page read while the server wrote it.
    bytes.copy(bytes, 2 * PAGE + PAGE / 2, 3 * PAGE + PAGE / 2, 4 * PAGE);
    writeFileSync(heap, bytes);

    const e = await rejectsWith(engineNative.finalize(staged), 'ERR_ONLINE_FINALIZE');

    expect(e.message).toMatch(/the engine cannot open the staged copy .*table 'T'.*page 2 CRC32 mismatch/);
    expect(tree(staged)).not.toContain('LOCK');
  });

  it('heaps from an earlier moment with an empty WAL lose rows: dump differs, and the server counts say so (negative control)', async () => {
    const src = makeDb('new', 400, '--index');
    const staged = stage(src, join(tmp(), 'staged'));
    fixture('new', 'insert', src, '--from', 400, '--count', 120);

    const done = await engineNative.finalize(staged);

    expect(counts(done.tables)).toEqual({ T: 400 });
    const reference = dump('new', src) as Record<string, TableDump>;
    expect(dump('new', staged)).not.toEqual(reference);
    const expected = Object.entries(reference).map(([table, d]) => ({ table, rows: BigInt(d.count) }));
    const e = await rejectsWith(engineNative.finalize(staged, expected), 'ERR_ONLINE_FINALIZE');
    expect(e.message).toBe('table T: the finalized copy holds 400 rows, the server held 520');
  });

  it('refuses a copy holding a sync identity before touching it (the stage leaves .powdb-sync/ out)', async () => {
    const src = makeDb('new', 50, '--index');
    fixture('new', 'sync-enable', src);
    const staged = stage(src, join(tmp(), 'staged'));
    mkdirSync(join(staged, '.powdb-sync'));
    copyFileSync(join(src, '.powdb-sync', 'identity.json'), join(staged, '.powdb-sync', 'identity.json'));
    const before = tree(staged);

    const e = await rejectsWith(engineNative.finalize(staged), 'ERR_SYNC_ENABLED');

    expect(e.message).toContain('a staged copy leaves .powdb-sync/ out');
    expect(tree(staged)).toEqual(before);
  });
});
