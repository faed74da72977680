import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullBackup, readManifest, restore } from '../index.js';
import { GENS, blake3Hex, dataHashes, ids, makeDb, rejectsWith, report, tmp } from './helpers.js';

describe.each(GENS)('full backup and restore (engine %s)', (gen) => {
  it('lists every durable file with its length and BLAKE3, never the WAL', async () => {
    const data = makeDb(gen, 300, '--index');
    const dest = join(tmp(), 'full');
    const manifest = await fullBackup(data, dest);

    expect(manifest.source_lsn).toBeGreaterThan(0n);
    const names = manifest.files.map((f) => f.name);
    expect(names).toContain('catalog.bin');
    expect(names).toContain('T.heap');
    expect(names).toContain('T_id.idx');
    expect(names).not.toContain('wal.log');
    expect(names).not.toContain('LOCK');
    for (const f of manifest.files) {
      const bytes = readFileSync(join(dest, f.name));
      expect(BigInt(bytes.length)).toBe(f.len);
      expect(blake3Hex(bytes)).toBe(f.blake3_hex);
    }
    expect(await readManifest(dest)).toEqual(manifest);
    const maps = names.filter((n) => n.endsWith('.heap')).map((n) => `${n}.pagemap`);
    expect(readdirSync(dest).sort()).toEqual([...names, ...maps, 'contents.json', 'manifest.json'].sort());
  });

  it('restores a directory the engine opens with every row', async () => {
    const data = makeDb(gen, 500, '--index');
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    const dest = join(tmp(), 'restored');
    const result = await restore(backup, dest);

    expect(result.files).toBe((await readManifest(backup)).files.length);
    const t = report(gen, dest).T!;
    expect(t.count).toBe(500);
    expect(t.ids).toEqual(ids(0, 500));
  });

  it('refuses a non-empty destination, leaving it untouched, then restores into a fresh one', async () => {
    const data = makeDb(gen, 50);
    const backup = join(tmp(), 'full');
    await fullBackup(data, backup);
    const stale = join(tmp(), 'stale');
    mkdirSync(stale);
    writeFileSync(join(stale, 'wal.log'), 'stale wal');

    const err = await rejectsWith(restore(backup, stale), 'ERR_DEST_NOT_EMPTY');
    expect(err.message).toContain(
      `restore destination ${stale} is not empty; restore requires a fresh or empty directory`,
    );
    expect(readdirSync(stale)).toEqual(['wal.log']);

    const empty = join(tmp(), 'empty');
    mkdirSync(empty);
    await restore(backup, empty);
    expect(report(gen, empty).T!.count).toBe(50);
  });

  it('round-trips a table with an index and lists its .idx', async () => {
    const data = makeDb(gen, 1000, '--index');
    const backup = join(tmp(), 'full');
    const manifest = await fullBackup(data, backup);
    expect(manifest.files.find((f) => f.name === 'T_id.idx')?.len).toBeGreaterThan(0n);
    const dest = join(tmp(), 'restored');
    await restore(backup, dest);
    expect(readFileSync(join(dest, 'T_id.idx'))).toEqual(readFileSync(join(backup, 'T_id.idx')));
    expect(report(gen, dest).T!.count).toBe(1000);
  });

  it('backup, restore, backup again gives the same source_lsn, names, lengths and hashes', async () => {
    const data = makeDb(gen, 800, '--index');
    const backup = join(tmp(), 'first');
    const first = await fullBackup(data, backup);
    const restored = join(tmp(), 'restored');
    await restore(backup, restored);
    const second = await fullBackup(restored, join(tmp(), 'second'));

    expect(second.source_lsn).toBe(first.source_lsn);
    expect(second.files).toEqual(first.files);
  });

  it('refuses a manifest of an unknown format version', async () => {
    const backup = join(tmp(), 'full');
    await fullBackup(makeDb(gen, 10), backup);
    const path = join(backup, 'manifest.json');
    writeFileSync(path, readFileSync(path, 'utf8').replace('"format_version": 1', '"format_version": 999'));
    const err = await rejectsWith(restore(backup, join(tmp(), 'r')), 'ERR_UNSUPPORTED_FORMAT');
    expect(err.message).toContain('unsupported backup format 999 (this build understands 1)');
  });

  it('refuses a tampered heap with an integrity error and publishes nothing', async () => {
    const backup = join(tmp(), 'full');
    await fullBackup(makeDb(gen, 400), backup);
    const heap = join(backup, 'T.heap');
    const bytes = readFileSync(heap);
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(heap, bytes);

    const dest = join(tmp(), 'r');
    const err = await rejectsWith(restore(backup, dest), 'ERR_INTEGRITY');
    expect(err.message).toBe('integrity check failed for T.heap: blake3 mismatch (backup is corrupt)');
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(join(dest, '..'))).toEqual([]);
  });

  it('creates backup and restore directories 0700 and their files 0600', async () => {
    const backup = join(tmp(), 'full');
    await fullBackup(makeDb(gen, 10), backup);
    const dest = join(tmp(), 'r');
    await restore(backup, dest);
    for (const dir of [backup, dest]) {
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);
    }
    expect(dataHashes(dest)).toEqual(dataHashes(backup));
  });
});
