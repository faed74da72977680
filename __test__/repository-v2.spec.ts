// Repository format 2: packs + index + sealed snapshots. Deduplication
// measured against the engine's own page changes, restores byte-identical to
// plain full backups of the same moment, encryption that leaves no plaintext
// on disk, damage reported by backup and refused on restore, prune, export
// (read back by the reference crate), migration from format 1, and the CLI.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  cpSync,
  existsSync,
  readFileSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  LegacyRepository,
  PackedRepository,
  Repository,
  fullBackup,
  migrate,
  verifyBackup,
  type BackupRecord,
  type ProgressEvent,
} from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { native } from '../lib/native/core.js';
import {
  CLI,
  GENS,
  cli,
  dataHashes,
  dump,
  fixture,
  ids,
  insertRows,
  makeDb,
  reference,
  rejectsWith,
  report,
  tmp,
  type Gen,
} from './helpers.js';

/** A cheap argon2id for API tests (the CLI uses the default). */
const KDF = { mKib: 64, t: 1, p: 1 };
const PASSWORD = 'correct horse battery staple';
const PAGE = 4096;
const RUN = 16 * PAGE; // heap_run_pages of the default chunking

// The API and the CLI read POWDB_BACKUP_PASSWORD: tests set it only where they mean to.
delete process.env.POWDB_BACKUP_PASSWORD;

// ---------------------------------------------------------------- helpers

/** What a restore lays down: every file but manifests, content maps and pagemaps. */
function dataFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of readdirSync(dir).sort()) {
    if (['manifest.json', 'increment.json', 'contents.json', 'LOCK'].includes(name) || name.endsWith('.pagemap'))
      continue;
    out.set(name, readFileSync(join(dir, name)));
  }
  return out;
}

/** `dir` holds exactly the data files of the plain backup `plain`, byte for byte. */
function expectSameFiles(dir: string, plain: string): void {
  const got = dataFiles(dir);
  const want = dataFiles(plain);
  // wal.log is not part of a backup: a plain full backup has none, a restore neither.
  want.delete('wal.log');
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, bytes] of want) {
    const other = got.get(name)!;
    expect({ name, len: other.length, same: other.equals(bytes) }).toEqual({ name, len: bytes.length, same: true });
  }
}

/** Every file under `dir` (relative paths), without the lock. */
function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((p) => statSync(join(dir, p)).isFile() && p !== 'LOCK')
    .sort();
}

function bytesUnder(dir: string): number {
  if (!existsSync(dir)) return 0;
  return filesUnder(dir).reduce((sum, p) => sum + statSync(join(dir, p)).size, 0);
}

/** The files of the repository that contain `needle`. */
function filesContaining(dir: string, needle: Buffer): string[] {
  return filesUnder(dir).filter((p) => readFileSync(join(dir, p)).includes(needle));
}

/** Objects are 0600 files published by hard link: read, unlink, write anew. */
function rewrite(path: string, change: (bytes: Buffer) => Buffer): void {
  const bytes = readFileSync(path);
  unlinkSync(path);
  writeFileSync(path, change(Buffer.from(bytes)), { mode: 0o600 });
}

function flipByte(path: string, at: (size: number) => number): void {
  rewrite(path, (b) => {
    const i = at(b.length);
    b[i] = b[i]! ^ 0x5a;
    return b;
  });
}

/** Objects added under `prefix` between two listings. */
const added = (before: string[], after: string[]) => after.filter((p) => !before.includes(p));

/** 4 KiB blocks of `b` that differ from `a` (or lie beyond its end). */
function changedBlocks(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let p = 0; p * PAGE < b.length; p++) {
    if (!a.subarray(p * PAGE, (p + 1) * PAGE).equals(b.subarray(p * PAGE, (p + 1) * PAGE))) out.push(p);
  }
  return out;
}

/** Restore of `asOf` must fail with one of `codes`, leaving no destination and nothing beside it. */
async function expectRestoreRefused(repo: PackedRepository, asOf: string, codes: string[]): Promise<string> {
  const parent = tmp();
  const before = readdirSync(parent).sort();
  const dest = join(parent, 'restored');
  let code: string | undefined;
  try {
    await repo.restore(dest, { asOf });
  } catch (err) {
    code = (err as { code: string }).code;
  }
  expect({ asOf, code: codes.includes(code!) ? 'one of the expected' : code }).toEqual({
    asOf,
    code: 'one of the expected',
  });
  expect(existsSync(dest)).toBe(false);
  expect(readdirSync(parent).sort()).toEqual(before);
  return code!;
}

/** Restores `asOf` into a fresh directory and returns it. */
async function restored(repo: PackedRepository | LegacyRepository, asOf?: string | bigint | Date): Promise<string> {
  const dest = join(tmp(), 'restored');
  await repo.restore(dest, { asOf });
  return dest;
}

/** A plain full backup of `data` as it is now (the reference for a restore of this moment). */
async function plainNow(data: string): Promise<string> {
  const dir = join(tmp(), 'plain');
  await fullBackup(data, dir);
  return dir;
}

const counts = (gen: Gen, dir: string) =>
  Object.fromEntries(Object.entries(report(gen, dir)).map(([t, r]) => [t, r.count]));

const packed = (r: unknown) => {
  expect(r).toBeInstanceOf(PackedRepository);
  return r as PackedRepository;
};

// ------------------------------------------------ dedup, restore, encryption

describe.each(GENS)('repository format 2 (engine %s)', (gen) => {
  it('stores an increment as about its changed pages, and an unchanged backup as almost nothing', async () => {
    const rows = 100_000;
    const data = makeDb(gen, rows, '--index');
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir, { compression: 'none' });
    const full = await repo.backup(data);
    const heap0 = readFileSync(join(data, 'T.heap'));
    const idx0 = readFileSync(join(data, 'T_id.idx'));
    // Compression none: a full backup stores at least every byte once.
    expect(full.stored_bytes).toBeGreaterThanOrEqual(BigInt(heap0.length + idx0.length));

    insertRows(gen, data, rows, rows / 100);
    const heap1 = readFileSync(join(data, 'T.heap'));
    const idx1 = readFileSync(join(data, 'T_id.idx'));
    const pages = changedBlocks(heap0, heap1);
    const idxBlocks = changedBlocks(idx0, idx1);
    expect(pages.length).toBeGreaterThan(0);
    const changedHeapBytes = pages.length * PAGE;
    // Every heap run holding a changed page must be stored again (nothing else of the heap).
    const runs = [...new Set(pages.map((p) => Math.floor((p * PAGE) / RUN)))];
    const runBytes = runs.reduce((s, r) => s + Math.min(RUN, heap1.length - r * RUN), 0);

    const before = bytesUnder(dir);
    const inc = await repo.backup(data);
    const grown = bytesUnder(dir) - before;
    const stored = Number(inc.stored_bytes);
    const detail = { stored, changedHeapBytes, runBytes, idxChanged: idxBlocks.length * PAGE, idx: idx1.length };
    console.log(`dedup (${gen}): ${JSON.stringify(detail)}`);
    expect(inc.type).toBe('incr');
    expect(inc.logical_bytes).toBe(
      full.logical_bytes + BigInt(heap1.length - heap0.length + idx1.length - idx0.length),
    );
    expect(stored).toBeLessThan(idx1.length / 5);
    expect(stored).toBeGreaterThanOrEqual(runBytes);
    expect(stored).toBeLessThan(3 * (changedHeapBytes + idxBlocks.length * PAGE));
    // stored_bytes is what the backup added: its packs and index (the snapshot is small).
    expect(grown).toBeGreaterThanOrEqual(stored);
    expect(grown - stored).toBeLessThan(16 << 10);

    const packs = filesUnder(join(dir, 'data'));
    const beforeSame = bytesUnder(dir);
    const same = await repo.backup(data);
    const addedBytes = bytesUnder(dir) - beforeSame;
    expect(addedBytes).toBeGreaterThan(0); // its snapshot
    expect(addedBytes).toBeLessThan(64 << 10);
    expect(Number(same.stored_bytes)).toBeLessThan(64 << 10);
    expect(filesUnder(join(dir, 'data'))).toEqual(packs);
    expect(same.logical_bytes).toBe(inc.logical_bytes);

    const dest = await restored(repo, same.id);
    expectSameFiles(dest, await plainNow(data));
    expect(report(gen, dest).T!.count).toBe(rows + rows / 100);
    repo.close();
  });

  it('restores every backup byte-identical to a plain full backup of its moment', async () => {
    const data = makeDb(gen, 3000, '--index');
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    const moments: { record: BackupRecord; plain: string; counts: Record<string, number> }[] = [];
    const take = async (expected: Record<string, number>, type?: 'full' | 'incr' | 'diff') => {
      const record = await repo.backup(data, type ? { type } : {});
      moments.push({ record, plain: await plainNow(data), counts: expected });
    };
    await take({ T: 3000 });
    insertRows(gen, data, 3000, 300);
    await take({ T: 3300 });
    fixture(gen, 'update', data, '--every', 7);
    await take({ T: 3300 }, 'diff');
    fixture(gen, 'add-table', data, '--table', 'U', '--rows', 500, '--index');
    await take({ T: 3300, U: 500 });
    fixture(gen, 'delete', data, '--every', 5);
    await take({ T: 2640, U: 500 }, 'full');

    const records = moments.map((m) => m.record);
    expect(records.map((r) => r.type)).toEqual(['full', 'incr', 'diff', 'incr', 'full']);
    expect(records.map((r) => r.parent)).toEqual([null, records[0]!.id, records[0]!.id, records[2]!.id, null]);
    expect((await repo.list()).map((r) => r.id)).toEqual(records.map((r) => r.id));

    for (const { record, plain, counts: expected } of moments) {
      const logical = [...dataFiles(plain).entries()]
        .filter(([n]) => n !== 'wal.log')
        .reduce((s, [, b]) => s + b.length, 0);
      expect(record.logical_bytes).toBe(BigInt(logical));
      const dest = join(tmp(), 'r');
      const r = await repo.restore(dest, { asOf: record.id });
      expect(r.applied).toEqual([record.id]);
      expect(r.sourceLsn).toBe(record.source_lsn);
      expectSameFiles(dest, plain); // before the engine opens it
      expect(counts(gen, dest)).toEqual(expected);
    }
    const newest = await restored(repo);
    expectSameFiles(newest, moments.at(-1)!.plain);
    const t = report(gen, newest).T!;
    expect(t.ids).toEqual(ids(0, 3300).filter((_, i) => i % 5 !== 0));

    const verified = await repo.verify();
    expect(verified.filter((v) => !v.report.ok)).toEqual([]);
    expect(verified.map((v) => v.id).filter((id) => id !== 'repository')).toEqual([...records.map((r) => r.id)].sort());
    const totals = await repo.totals();
    expect(totals).toMatchObject({ format: 4, compression: 'zstd:3', encryption: 'none', backups: 5 });
    expect(totals.logical_bytes).toBe(records.reduce((s, r) => s + r.logical_bytes, 0n));
    expect(totals.stored_bytes).toBe(BigInt(bytesUnder(dir)));
    // Five backups of one database, compressed and deduplicated, in less than one of them.
    expect(totals.stored_bytes).toBeLessThan(records[0]!.logical_bytes);
    repo.close();
  });

  it('encrypted: no row text, table name or heap bytes anywhere on disk; a plain repository shows them', async () => {
    const data = makeDb(gen, 2000, '--index');
    insertRows(gen, data, 987_654_321, 3); // names row-987654321-xxx…
    fixture(gen, 'add-table', data, '--table', 'QzMarkerTable', '--rows', 10);
    const heap = readFileSync(join(data, 'T.heap'));
    const middle = Math.floor(heap.length / PAGE / 2) * PAGE + 1024;
    const snippet = heap.subarray(middle, middle + 48);
    expect(new Set(snippet).size).toBeGreaterThan(8);
    const markers = {
      row: Buffer.from('row-987654321-'),
      table: Buffer.from('QzMarkerTable'),
      heap: Buffer.from(snippet),
    };

    const plainDir = join(tmp(), 'plain-repo');
    const plain = await PackedRepository.init(plainDir, { compression: 'none' });
    await plain.backup(data);
    plain.close();
    for (const [what, needle] of Object.entries(markers)) {
      expect({ what, found: filesContaining(plainDir, needle).length > 0 }).toEqual({ what, found: true });
    }

    const dir = join(tmp(), 'enc-repo');
    const repo = await PackedRepository.init(dir, { compression: 'none', encrypt: true, password: PASSWORD, kdf: KDF });
    expect(repo.encrypted).toBe(true);
    const record = await repo.backup(data);
    repo.close();
    expect(filesUnder(dir).filter((p) => p.startsWith('data/')).length).toBeGreaterThan(0);
    for (const [what, needle] of Object.entries(markers)) {
      expect({ what, files: filesContaining(dir, needle) }).toEqual({ what, files: [] });
    }
    const config = JSON.parse(readFileSync(join(dir, 'config'), 'utf8'));
    expect(config).toMatchObject({ format: 4, encryption: 'xchacha20-poly1305', compression: 'none' });
    expect(config.id_key_hex).toBeUndefined();

    const reopened = await PackedRepository.open(dir, { password: PASSWORD });
    const dest = await restored(reopened, record.id);
    expectSameFiles(dest, await plainNow(data));
    const r = report(gen, dest);
    expect(r.T!.ids.slice(-3)).toEqual([987_654_321, 987_654_322, 987_654_323]);
    expect(r.QzMarkerTable!.count).toBe(10);
    reopened.close();
  });

  it('prunes what expired backups alone used; what stays restores and verifies', async () => {
    const x = makeDb(gen, 20_000, '--index');
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    const f1 = await repo.backup(x, { type: 'full', source: 'db' });
    insertRows(gen, x, 20_000, 2000);
    const f2 = await repo.backup(x, { type: 'full', source: 'db' }); // shares nearly every chunk with f1
    const plain2 = await plainNow(x);
    expect(Number(f2.stored_bytes)).toBeLessThan(Number(f1.stored_bytes) / 2);
    const y = join(tmp(), 'other');
    // Other ids, other names: neither heap nor index shares content with x's.
    fixture(gen, 'create', y, '--rows', 0, '--index');
    fixture(gen, 'insert', y, '--table', 'T', '--from', 1_000_000, '--count', 22_000, '--pad', 41);
    // Another database in the same source, on purpose (retention counts per source).
    const f3 = await repo.backup(y, { type: 'full', source: 'db', sameDatabase: true });
    const plain3 = await plainNow(y);

    const all = bytesUnder(join(dir, 'data'));
    const first = await repo.expire({ retainFull: 2 });
    expect(first.removed).toEqual([f1.id]);
    expect(first.kept).toEqual([f2.id, f3.id]);
    // Only f1's old tail run and index chunks are unused: too few to repack f1's pack, so data/ need not shrink yet.
    const afterFirst = bytesUnder(join(dir, 'data'));
    expect(afterFirst).toBeLessThanOrEqual(all);
    expect(filesUnder(join(dir, 'index'))).toHaveLength(1); // prune replaces every index by one
    expectSameFiles(await restored(repo, f2.id), plain2); // shared chunks survived the prune

    const second = await repo.expire({ retainFull: 1 });
    expect(second.removed).toEqual([f2.id]);
    expect(second.pruned!.bytesFreed).toBeGreaterThan(0n);
    const left = bytesUnder(join(dir, 'data'));
    console.log(
      `prune (${gen}): data/ ${all} -> ${afterFirst} -> ${left} bytes; stored f1 ${f1.stored_bytes} f2 ${f2.stored_bytes} f3 ${f3.stored_bytes}`,
      first.pruned,
      second.pruned,
    );
    expect(left).toBeLessThan(afterFirst * 0.6);
    expect(left).toBeGreaterThan(Number(f3.stored_bytes) * 0.8);
    expect(left).toBeLessThan(Number(f3.stored_bytes) * 1.1 + (16 << 10)); // nothing but what f3 uses
    expect(filesUnder(dir).filter((p) => p.startsWith('snapshots/'))).toEqual([`snapshots/${f3.id}`]);

    expect((await repo.list()).map((r) => r.id)).toEqual([f3.id]);
    const dest = await restored(repo);
    expectSameFiles(dest, plain3);
    expect(report(gen, dest).T!.ids).toEqual(ids(1_000_000, 1_022_000));
    const verified = await repo.verify();
    expect(verified.filter((v) => !v.report.ok)).toEqual([]);
    expect(verified.find((v) => v.id === 'repository')?.report.checks.join(' ') ?? '').not.toMatch(/no index lists/);
    repo.close();
  });

  it('exports a backup as a plain full backup that verifies and that the reference crate restores', async () => {
    const data = makeDb(gen, 2500, '--index');
    const repo = await PackedRepository.init(join(tmp(), 'repo'), {
      encrypt: gen === 'new',
      password: PASSWORD,
      kdf: KDF,
    });
    const b1 = await repo.backup(data);
    const plain1 = await plainNow(data);
    const moment1 = join(tmp(), 'moment1');
    cpSync(data, moment1, { recursive: true });
    insertRows(gen, data, 2500, 400);
    fixture(gen, 'add-table', data, '--table', 'Later', '--rows', 20);
    const b2 = await repo.backup(data);
    expect(b2.source_lsn).toBeGreaterThan(b1.source_lsn);

    const exported = join(tmp(), 'export');
    const r = await repo.export(exported, { asOf: b1.id });
    expect(r.id).toBe(b1.id);
    expect(r.manifest.source_lsn).toBe(b1.source_lsn);
    expect((await verifyBackup(exported)).ok).toBe(true);
    expect(dataHashes(exported)).toEqual(dataHashes(plain1));

    const theirs = join(tmp(), 'theirs');
    reference(gen, 'restore', exported, theirs);
    expect(dump(gen, theirs)).toEqual(dump(gen, moment1));
    expect(report(gen, theirs).T!.ids).toEqual(ids(0, 2500));
    repo.close();
  });

  it('migrates a format-1 repository: same catalog, every backup restores the same bytes', async () => {
    const data = makeDb(gen, 2000, '--index');
    const oldDir = join(tmp(), 'v1');
    const old = await Repository.init(oldDir, { format: 1 });
    expect(old).toBeInstanceOf(LegacyRepository);
    await old.backup(data);
    insertRows(gen, data, 2000, 500);
    await old.backup(data);
    fixture(gen, 'update', data, '--every', 3);
    await old.backup(data, { type: 'diff' });
    const oldRecords = await old.list();
    expect(oldRecords.map((r) => r.type)).toEqual(['full', 'incr', 'diff']);

    const newDir = join(tmp(), 'v2');
    const encrypt = gen === 'new';
    const { migrated, repository } = await migrate(oldDir, newDir, { encrypt, password: PASSWORD, kdf: KDF });
    expect(migrated).toEqual(oldRecords.map((r) => r.id));
    repository.close();
    const repo = packed(await Repository.open(newDir, { password: PASSWORD }));
    expect(repo.encrypted).toBe(encrypt);
    const pick = (r: BackupRecord) => ({
      id: r.id,
      type: r.type,
      parent: r.parent,
      created: r.created,
      lsn: r.source_lsn,
    });
    expect((await repo.list()).map(pick)).toEqual(oldRecords.map(pick));

    const expected = [2000, 2500, 2500];
    for (const [i, record] of oldRecords.entries()) {
      const fromOld = await restored(old as LegacyRepository, record.id);
      const fromNew = await restored(repo, record.id);
      expectSameFiles(fromNew, fromOld);
      expect(report(gen, fromNew).T!.count).toBe(expected[i]);
    }
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    // The old repository is only read, and a format-2 one is not migrated again.
    expect((await (await Repository.open(oldDir)).list()).map((r) => r.id)).toEqual(migrated);
    await rejectsWith(
      migrate(newDir, join(tmp(), 'again'), { fromPassword: PASSWORD, password: PASSWORD }),
      'ERR_INVALID_ARG',
    );
    repo.close();
  });
});

// ------------------------------------------------------------- passwords

describe('restore drill: verify --repo --source', () => {
  it('finds a backup identical to its data directory, then names every page and file that changed', async () => {
    const data = makeDb('new', 3000, '--index');
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    const first = await repo.backup(data);
    const events: ProgressEvent[] = [];
    const clean = await repo.verify({ source: data, onProgress: (e) => events.push(e) });
    expect(clean.map((v) => [v.id, v.report.ok, v.report.errors])).toEqual([[first.id, true, []]]);
    // Progress over the backup's bytes compared, monotonic, ending at the totals.
    const last = events.at(-1)!;
    expect(last).toMatchObject({ operation: 'verify', filesDone: last.filesTotal, bytesDone: last.bytesTotal });
    expect(last.bytesTotal).toBe(first.logical_bytes);
    expect(events.every((e, i) => i === 0 || e.bytesDone >= events[i - 1]!.bytesDone)).toBe(true);
    insertRows('new', data, 3000, 300);
    const drift = (await repo.verify({ source: data }))[0]!;
    expect(drift.report.ok).toBe(false);
    for (const e of drift.report.errors) expect(e.code).toBe('ERR_DIFFERS');
    const heap = drift.report.errors.filter((e) => e.file === 'T.heap');
    expect(heap.some((e) => e.page !== undefined)).toBe(true);
    expect(drift.report.errors.some((e) => /^T_id\.idx: content differs/.test(e.message))).toBe(true);
    const r = cli('verify', '--repo', dir, '--source', data, '--id', first.id);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/T\.heap: page \d+ differs/);
    const second = await repo.backup(data);
    expect((await repo.verify({ source: data }))[0]).toMatchObject({ id: second.id, report: { ok: true } });
    repo.close();
  });
});

describe('encrypted repository passwords and keys', () => {
  it('refuses a wrong or missing password with stable codes, and reads POWDB_BACKUP_PASSWORD', async () => {
    const data = makeDb('new', 300);
    const dir = join(tmp(), 'repo');
    await rejectsWith(PackedRepository.init(dir, { encrypt: true, kdf: KDF }), 'ERR_PASSWORD_REQUIRED');
    const repo = await PackedRepository.init(dir, { encrypt: true, password: PASSWORD, kdf: KDF });
    const record = await repo.backup(data);
    repo.close();

    await rejectsWith(PackedRepository.open(dir, { password: 'not it' }), 'ERR_BAD_PASSWORD');
    await rejectsWith(PackedRepository.open(dir, { password: `${PASSWORD} ` }), 'ERR_BAD_PASSWORD');
    await rejectsWith(PackedRepository.open(dir), 'ERR_PASSWORD_REQUIRED');
    await rejectsWith(Repository.open(dir), 'ERR_PASSWORD_REQUIRED');

    process.env.POWDB_BACKUP_PASSWORD = PASSWORD;
    try {
      const viaEnv = await PackedRepository.open(dir);
      expect((await viaEnv.list()).map((r) => r.id)).toEqual([record.id]);
      viaEnv.close();
    } finally {
      delete process.env.POWDB_BACKUP_PASSWORD;
    }

    const plain = await PackedRepository.init(join(tmp(), 'plain'), { kdf: KDF });
    expect(plain.encrypted).toBe(false);
    await rejectsWith(plain.addKey('x', KDF), 'ERR_NOT_ENCRYPTED');
    plain.close();
  });

  it('adds, lists and removes keys; the data stays readable with the remaining one; never removes the last', async () => {
    const data = makeDb('new', 400);
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir, { encrypt: true, password: 'first', kdf: KDF });
    const record = await repo.backup(data);
    const [k1, ...none] = await repo.listKeys();
    expect(none).toEqual([]);
    expect(k1!.current).toBe(true);
    expect(readdirSync(join(dir, 'keys'))).toEqual([k1!.id]);

    const k2 = await repo.addKey('second', KDF);
    expect(k2).not.toBe(k1!.id);
    const listed = await repo.listKeys();
    expect(listed.map((k) => k.id).sort()).toEqual([k1!.id, k2].sort());
    expect(listed.filter((k) => k.current).map((k) => k.id)).toEqual([k1!.id]);
    repo.close();

    const second = await PackedRepository.open(dir, { password: 'second' });
    expect((await second.listKeys()).filter((k) => k.current).map((k) => k.id)).toEqual([k2]);
    await rejectsWith(second.removeKey('00112233445566778899'), 'ERR_NO_KEY');
    await second.removeKey(k1!.id);
    expect((await second.listKeys()).map((k) => k.id)).toEqual([k2]);
    await rejectsWith(PackedRepository.open(dir, { password: 'first' }), 'ERR_BAD_PASSWORD');
    const err = await rejectsWith(second.removeKey(k2), 'ERR_LAST_KEY');
    expect(err.message).toMatch(/only key/);
    expect(readdirSync(join(dir, 'keys'))).toEqual([k2]);
    second.close();

    const again = await PackedRepository.open(dir, { password: 'second' });
    const dest = await restored(again, record.id);
    expect(report('new', dest).T!.count).toBe(400);
    again.close();

    // A key file asking for an absurd argon2 cost is refused, naming the file.
    const keyPath = join(dir, 'keys', k2);
    rewrite(keyPath, (b) => {
      const file = JSON.parse(b.toString('utf8'));
      return Buffer.from(JSON.stringify({ ...file, m_kib: 1 << 30 })); // the argon2 parameters are top-level fields
    });
    const bad = await rejectsWith(PackedRepository.open(dir, { password: 'second' }), 'ERR_BAD_KEY_FILE');
    expect(bad.message).toContain(`keys/${k2}`);
  });
});

// ------------------------------------------------------------------ damage

type Mode = 'plain' | 'encrypted';

/** A repository with a full backup A and an increment B, each in its own pack and index. */
async function twoBackups(mode: Mode, { nextSecond = false } = {}) {
  const data = makeDb('new', 4000, '--index');
  const dir = join(tmp(), 'repo');
  const options = mode === 'encrypted' ? { encrypt: true, password: PASSWORD, kdf: KDF } : {};
  const repo = await PackedRepository.init(dir, options);
  const objects = () => filesUnder(dir);
  const o0 = objects();
  const a = await repo.backup(data);
  const plainA = await plainNow(data);
  const o1 = objects();
  insertRows('new', data, 4000, 400);
  // B's id then names a later second than A's creation time.
  if (nextSecond) await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 10));
  const b = await repo.backup(data);
  const plainB = await plainNow(data);
  const o2 = objects();
  repo.close();
  const of = (list: string[], prefix: string) => list.filter((p) => p.startsWith(prefix));
  const packsA = of(added(o0, o1), 'data/');
  const packsB = of(added(o1, o2), 'data/');
  const indexA = of(added(o0, o1), 'index/');
  const indexB = of(added(o1, o2), 'index/');
  // The scenario needs one pack and one index per backup.
  expect([packsA.length, packsB.length, indexA.length, indexB.length]).toEqual([1, 1, 1, 1]);
  const open = () => PackedRepository.open(dir, mode === 'encrypted' ? { password: PASSWORD } : {});
  return {
    dir,
    a,
    b,
    plain: { [a.id]: plainA, [b.id]: plainB },
    packA: packsA[0]!,
    packB: packsB[0]!,
    indexA: indexA[0]!,
    indexB: indexB[0]!,
    open,
  };
}

/** `hits`: the backups the damage must break ('' for none: then only the repository report fails). */
const DAMAGE: {
  name: string;
  damage: (t: Awaited<ReturnType<typeof twoBackups>>) => void;
  hits: '' | 'A' | 'B' | 'AB';
}[] = [
  {
    name: 'a byte flipped in a pack',
    hits: 'A',
    damage: (t) => flipByte(join(t.dir, t.packA), (n) => Math.floor(n / 3)),
  },
  {
    name: 'a byte flipped in an index object',
    hits: 'B',
    damage: (t) => flipByte(join(t.dir, t.indexB), (n) => Math.floor(n / 2)),
  },
  {
    name: 'a byte flipped in a snapshot',
    hits: 'B',
    damage: (t) => flipByte(join(t.dir, 'snapshots', t.b.id), (n) => Math.floor(n / 2)),
  },
  {
    name: 'a truncated pack',
    hits: 'B',
    damage: (t) => rewrite(join(t.dir, t.packB), (b) => b.subarray(0, Math.floor(b.length / 2))),
  },
  { name: 'a deleted pack', hits: 'B', damage: (t) => unlinkSync(join(t.dir, t.packB)) },
  {
    name: 'a pack copied over another',
    hits: 'B',
    damage: (t) => rewrite(join(t.dir, t.packB), () => readFileSync(join(t.dir, t.packA))),
  },
  { name: 'two packs swapped', hits: 'AB', damage: (t) => swap(join(t.dir, t.packA), join(t.dir, t.packB)) },
  {
    name: 'a truncated index object',
    hits: 'B',
    damage: (t) => rewrite(join(t.dir, t.indexB), (b) => b.subarray(0, b.length - 7)),
  },
  { name: 'two index objects swapped', hits: 'AB', damage: (t) => swap(join(t.dir, t.indexA), join(t.dir, t.indexB)) },
  {
    name: 'an index object duplicated under another name',
    hits: '',
    damage: (t) => copyFileSync(join(t.dir, t.indexB), join(t.dir, 'index', 'f'.repeat(64))),
  },
  {
    name: 'a truncated snapshot',
    hits: 'B',
    damage: (t) => rewrite(join(t.dir, 'snapshots', t.b.id), (b) => b.subarray(0, b.length - 1)),
  },
  {
    name: 'a snapshot copied over another',
    hits: 'B',
    damage: (t) => rewrite(join(t.dir, 'snapshots', t.b.id), () => readFileSync(join(t.dir, 'snapshots', t.a.id))),
  },
  {
    name: 'two snapshots swapped',
    hits: 'AB',
    damage: (t) => swap(join(t.dir, 'snapshots', t.a.id), join(t.dir, 'snapshots', t.b.id)),
  },
];

function swap(a: string, b: string): void {
  const [x, y] = [readFileSync(a), readFileSync(b)];
  writeFileSync(a, y);
  writeFileSync(b, x);
}

describe.each(['plain', 'encrypted'] as Mode[])('damage to a %s repository', (mode) => {
  it.each(DAMAGE)(
    '$name: verify names the backups it breaks, their restore is refused, the others restore',
    async (c) => {
      const t = await twoBackups(mode);
      c.damage(t);
      const repo = await t.open();
      const hits = [...c.hits].map((h) => (h === 'A' ? t.a.id : t.b.id));
      const results = await repo.verify();
      const bad = results.filter((v) => !v.report.ok && v.id !== 'repository').map((v) => v.id);
      // Dedup: B also uses chunks of A's pack, so damage there may break B as well.
      for (const id of hits) expect(bad).toContain(id);
      if (hits.length === 0) expect(bad).toEqual([]);
      for (const v of results.filter((v) => !v.report.ok)) {
        expect(v.report.errors.length).toBeGreaterThan(0);
        for (const e of v.report.errors)
          expect(['ERR_INTEGRITY', 'ERR_MISSING_FILE', 'ERR_BAD_MANIFEST']).toContain(e.code);
      }
      if (!c.name.includes('snapshot')) expect(results.find((v) => v.id === 'repository')?.report.ok).toBe(false);

      // verify and restore agree, backup by backup.
      for (const record of [t.a, t.b]) {
        if (bad.includes(record.id)) {
          await expectRestoreRefused(repo, record.id, ['ERR_INTEGRITY', 'ERR_MISSING_FILE', 'ERR_BAD_MANIFEST']);
        } else if (!c.name.includes('snapshot')) {
          expectSameFiles(await restored(repo, record.id), t.plain[record.id]!);
        }
      }
      repo.close();
    },
  );

  it('a lost index object: verify names what it breaks; the next expire indexes its packs again and all restores', async () => {
    const t = await twoBackups(mode);
    unlinkSync(join(t.dir, t.indexB));
    const repo = await t.open();
    const results = await repo.verify();
    expect(results.filter((v) => !v.report.ok).map((v) => v.id)).toEqual([t.b.id]);
    expect(results[0]!.report.checks.join('\n')).toMatch(/1 pack\(s\) no index lists/);
    await expectRestoreRefused(repo, t.b.id, ['ERR_MISSING_FILE']);
    // A backup beside others leaves unindexed packs alone (they may be another's, being written); expire settles them.
    const data = makeDb('new', 10);
    await repo.backup(data, { sameDatabase: true });
    expect((await repo.verify()).filter((v) => !v.report.ok).map((v) => v.id)).toEqual([t.b.id]);
    await repo.expire({ retainFull: 10 });
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    for (const record of [t.a, t.b]) expectSameFiles(await restored(repo, record.id), t.plain[record.id]!);
    repo.close();
  });

  it('a damaged index object blocks writers until repair rebuilds it from the packs; then all restores', async () => {
    const t = await twoBackups(mode);
    flipByte(join(t.dir, t.indexB), (n) => Math.floor(n / 2));
    const repo = await t.open();
    const data = makeDb('new', 10);
    const refused = repo.backup(data, { sameDatabase: true });
    await expect(refused).rejects.toThrow(/powdb-backup repair --repo/);
    await rejectsWith(refused, 'ERR_INTEGRITY');
    const env = { ...process.env, POWDB_BACKUP_PASSWORD: mode === 'encrypted' ? PASSWORD : undefined };
    const r = spawnSync(process.execPath, [CLI, 'repair', '--repo', t.dir, '--json'], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      indexes_removed: 1,
      packs_indexed: 1,
      packs_removed: 0,
      packs_damaged: 0,
    });
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    for (const record of [t.a, t.b]) expectSameFiles(await restored(repo, record.id), t.plain[record.id]!);
    await repo.backup(data, { sameDatabase: true });
    repo.close();
  });

  it('a damaged snapshot of one backup leaves every other backup restorable', async () => {
    const t = await twoBackups(mode, { nextSecond: true });
    flipByte(join(t.dir, 'snapshots', t.b.id), (n) => Math.floor(n / 2));
    const repo = await t.open();
    const bad = (await repo.verify()).filter((v) => !v.report.ok).map((v) => v.id);
    expect(bad).toEqual([t.b.id]); // verify already says A is fine
    expectSameFiles(await restored(repo, t.a.id), t.plain[t.a.id]!);
    expectSameFiles(await restored(repo, new Date(t.a.created)), t.plain[t.a.id]!); // a time before B
    // The newest, or an LSN, could be B: refused, naming it, rather than silently an older backup.
    await expect(restored(repo)).rejects.toThrow(t.b.id);
    await expect(restored(repo, t.b.source_lsn)).rejects.toThrow(t.b.id);
    // New backups still go in (with a warning); expire, which would prune B's chunks, stops.
    const c = await repo.backup(makeDb('new', 10), { sameDatabase: true });
    expect(counts('new', await restored(repo, c.id))).toEqual({ T: 10 });
    // The catalog still lists every backup that can be read (info works).
    expect((await repo.list()).map((r) => r.id)).toEqual([t.a.id, c.id]);
    expect((await repo.info()).backups.length).toBe(2);
    await rejectsWith(repo.expire({ retainFull: 1 }), 'ERR_INTEGRITY');
    repo.close();
  });
});

describe('damage seen from the CLI', () => {
  it('verify --repo exits 1 and names the broken backup', async () => {
    const t = await twoBackups('plain');
    unlinkSync(join(t.dir, t.packB));
    const r = cli('verify', '--repo', t.dir, '--json');
    expect(r.code).toBe(1);
    const out = parseJson(r.stdout) as { ok: boolean; chains: { id: string; report: { ok: boolean } }[] };
    expect(out.ok).toBe(false);
    expect(out.chains.filter((c) => !c.report.ok && c.id !== 'repository').map((c) => c.id)).toEqual([t.b.id]);
    const dest = join(tmp(), 'r');
    const restore = cli('restore', '--repo', t.dir, dest, '--as-of', t.b.id);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/missing|damaged|integrity/i);
    expect(existsSync(dest)).toBe(false);
  });
});

// --------------------------------------------------------- format and lock

describe('format and writers', () => {
  it.each(GENS)(
    'format 4 stores heap pages as row deltas: smaller than format 3 (made when asked), the same bytes back (engine %s)',
    async (gen) => {
      const data = makeDb(gen, 30_000, '--index');
      insertRows(gen, data, 30_000, 2000);
      const plain = await plainNow(data);
      const stored: Record<string, number> = {};
      for (const format of ['3', '4']) {
        const dir = join(tmp(), `repo-${format}`);
        expect(cli('init', dir, '--format', format, '--json').stdout).toMatch(new RegExp(`"format": ?${format}`));
        expect(cli('backup', data, '--repo', dir, '--quiet').code).toBe(0);
        stored[format] = bytesUnder(dir);
        const dest = join(tmp(), `restored-${format}`);
        expect(cli('restore', '--repo', dir, dest, '--quiet').code).toBe(0);
        expectSameFiles(dest, plain);
        expect(counts(gen, dest)).toEqual(counts(gen, data));
        const verified = cli('verify', '--repo', dir);
        expect(verified.code, verified.stdout).toBe(0);
      }
      // The heap is most of what is stored: its rows count up, so it shrinks several times.
      expect(stored['4']!, JSON.stringify(stored)).toBeLessThan(stored['3']! * 0.8);
    },
    120_000,
  );

  it('refuses a repository of a newer format with ERR_UNSUPPORTED_FORMAT', async () => {
    const dir = join(tmp(), 'repo');
    (await PackedRepository.init(dir)).close();
    rewrite(join(dir, 'config'), (b) => {
      const config = JSON.parse(b.toString('utf8'));
      expect(config.format).toBe(4);
      return Buffer.from(JSON.stringify({ ...config, format: 5 }, null, 2));
    });
    const err = await rejectsWith(PackedRepository.open(dir), 'ERR_UNSUPPORTED_FORMAT');
    expect(err.message).toMatch(/format 5/);
    await rejectsWith(Repository.open(dir), 'ERR_UNSUPPORTED_FORMAT');
    const r = cli('info', '--repo', dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/format 5, newer than this powdb-backup reads/);
  });

  it('backups go on beside the writer lock, expire does not; two handles back up at once', async () => {
    const data = makeDb('new', 2000, '--index');
    const dir = join(tmp(), 'repo');
    const repo = await PackedRepository.init(dir);
    await repo.backup(data);
    const lock = await native.acquireLock(dir);
    try {
      await repo.backup(data);
      const refused = await rejectsWith(repo.expire({ retainFull: 1 }), 'ERR_REPO_LOCKED');
      expect(refused.message).toMatch(/in use by another expire, repair or key removal.*--lock-wait/);
      const r = cli('expire', '--repo', dir, '--retain-full', '1');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/is in use by another expire/);
      expect(cli('backup', data, '--repo', dir).code).toBe(0);
    } finally {
      await native.releaseLock(lock);
    }
    expect((await repo.list()).length).toBe(3);
    expect(existsSync(join(dir, 'LOCK'))).toBe(false);

    // Two handles at once (copies of one database: a data directory is backed up by one process at a time).
    const other = await PackedRepository.open(dir);
    insertRows('new', data, 2000, 100);
    const copies = [1, 2].map((n) => {
      const copy = join(tmp(), `copy${n}`);
      cpSync(data, copy, { recursive: true });
      return copy;
    });
    const both = await Promise.all([repo.backup(data), other.backup(copies[0]!), repo.backup(copies[1]!)]);
    expect(new Set(both.map((b) => b.id)).size).toBe(3);
    other.close();
    repo.close();
    const fresh = await PackedRepository.open(dir);
    expect((await fresh.list()).length).toBe(6);
    expect((await fresh.verify()).filter((v) => !v.report.ok)).toEqual([]);
    for (const b of both) expect(counts('new', await restored(fresh, b.id))).toEqual({ T: 2100 });
    fresh.close();
  });

  it("a handle opened before another writer's backup restores and verifies that backup", async () => {
    const data = makeDb('new', 2000, '--index');
    const dir = join(tmp(), 'repo');
    const reader = await PackedRepository.init(dir);
    await reader.backup(data);
    const writer = await PackedRepository.open(dir);
    insertRows('new', data, 2000, 500);
    const later = await writer.backup(data);
    writer.close();
    expect((await reader.list()).map((r) => r.id)).toContain(later.id); // the catalog is fresh
    expect((await reader.verify()).filter((v) => !v.report.ok)).toEqual([]);
    expect(counts('new', await restored(reader, later.id))).toEqual({ T: 2500 });
    reader.close();
  });

  it('two CLI backups at once: both succeed, the repository stays whole', async () => {
    const data = makeDb('new', 40_000, '--index');
    const copy = join(tmp(), 'copy');
    cpSync(data, copy, { recursive: true });
    const dir = join(tmp(), 'repo');
    (await PackedRepository.init(dir)).close();
    const start = (source: string) =>
      spawn(process.execPath, [CLI, 'backup', source, '--repo', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const results = await Promise.all(
      [start(data), start(copy)].map(async (child) => {
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        const [code] = await once(child, 'exit');
        return { code, stderr };
      }),
    );
    expect(results).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    const repo = await PackedRepository.open(dir);
    expect((await repo.list()).length).toBe(2);
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    expect(existsSync(join(dir, 'LOCK'))).toBe(false);
    repo.close();
  });
});

// ---------------------------------------------------------------------- CLI

describe('repository format 2 from the CLI', () => {
  it('init --encrypt, backup, info --json, restore with POWDB_BACKUP_PASSWORD, key list', async () => {
    const data = makeDb('new', 1500, '--index');
    const dir = join(tmp(), 'repo');
    const pw = join(tmp(), 'password');
    writeFileSync(pw, 'cli secret\nsecond line is ignored\n');
    const run = (env: Record<string, string | undefined>, ...args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };

    const init = cli('init', dir, '--encrypt', '--password-file', pw);
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/format 4, compression zstd, encrypted/);
    expect(JSON.parse(readFileSync(join(dir, 'config'), 'utf8')).encryption).toBe('xchacha20-poly1305');

    const first = parseJson(cli('backup', data, '--repo', dir, '--password-file', pw, '--json').stdout) as BackupRecord;
    expect(first.type).toBe('full');
    insertRows('new', data, 1500, 100);
    const second = run({ POWDB_BACKUP_PASSWORD: 'cli secret' }, 'backup', data, '--repo', dir);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^backup \d{8}T\d{6}Z-I(-\d+)? \(incr on /);

    const info = cli('info', '--repo', dir, '--password-file', pw, '--json');
    expect(info.code).toBe(0);
    const parsed = parseJson(info.stdout) as { backups: BackupRecord[]; totals: Record<string, unknown> };
    expect(parsed.backups.map((b) => b.id)[0]).toBe(first.id);
    expect(parsed.backups.length).toBe(2);
    for (const b of parsed.backups) {
      expect(typeof b.logical_bytes).toBe('bigint');
      expect(typeof b.stored_bytes).toBe('bigint');
      expect(b.logical_bytes).toBeGreaterThan(0n);
    }
    expect(parsed.totals).toMatchObject({
      format: 4n,
      encryption: 'xchacha20-poly1305',
      compression: 'zstd:3',
      backups: 2n,
    });
    expect(parsed.totals.logical_bytes).toBe(parsed.backups.reduce((s, b) => s + b.logical_bytes, 0n));
    expect(parsed.totals.stored_bytes).toBe(BigInt(bytesUnder(dir)));

    const dest = join(tmp(), 'r');
    const restore = run({ POWDB_BACKUP_PASSWORD: 'cli secret' }, 'restore', '--repo', dir, dest);
    expect(restore.code).toBe(0);
    expectSameFiles(dest, await plainNow(data));
    expect(report('new', dest).T!.count).toBe(1600);

    const wrong = run(
      { POWDB_BACKUP_PASSWORD: 'cli secreT' },
      'restore',
      '--repo',
      dir,
      join(tmp(), 'w'),
      '--as-of',
      first.id,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/password opens none/);
    const missing = run({ POWDB_BACKUP_PASSWORD: undefined }, 'info', '--repo', dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/is encrypted: give its password/);

    const keys = cli('key', 'list', '--repo', dir, '--password-file', pw);
    expect(keys.code).toBe(0);
    const lines = keys.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\* [0-9a-f]{16} {2}\d{4}-\d\d-\d\dT/);
    expect(lines[0]).toContain(readdirSync(join(dir, 'keys'))[0]);
  });

  it('export --as-of writes a backup the plain verify accepts', async () => {
    const data = makeDb('new', 800);
    const dir = join(tmp(), 'repo');
    expect(cli('init', dir, '--compression', 'zstd:3').code).toBe(0);
    const first = parseJson(cli('backup', data, '--repo', dir, '--json').stdout) as BackupRecord;
    const plain = await plainNow(data);
    insertRows('new', data, 800, 200);
    expect(cli('backup', data, '--repo', dir).code).toBe(0);
    const dest = join(tmp(), 'exported');
    const r = cli('export', '--repo', dir, dest, '--as-of', first.id, '--json');
    expect(r.code).toBe(0);
    expect((parseJson(r.stdout) as { id: string }).id).toBe(first.id);
    expect(cli('verify', dest).code).toBe(0);
    expect(dataHashes(dest)).toEqual(dataHashes(plain));
  });
});
