// Sync-enabled directories (engine 0.29 after `sync-enable`): backed up with
// the reference's `sync` block, restored in its three modes, both ways with
// the reference crate, in directories and in repositories.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PackedRepository,
  fullBackup,
  incrementalBackup,
  restoreChain,
  verifyBackup,
  type SyncIdentity,
} from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { cli, editText, fixture, insertRows, makeDb, reference, rejectsWith, report, tmp } from './helpers.js';

const gen = 'new';
const MODES = ['strip', 'preserve', 'fork'] as const;

/** A database with T (rows, indexed) on which sync was enabled, as `powdb-cli sync-enable` does it. */
function syncDb(rows: number): string {
  const data = makeDb(gen, rows, '--index');
  fixture(gen, 'sync-enable', data);
  return data;
}

const identityPath = (dir: string) => join(dir, '.powdb-sync', 'identity.json');
/** identity.json as JSON holds it (u64 fields as bigint; format_version is a small number in our type). */
function identityOf(dir: string): SyncIdentity {
  const raw = parseJson(readFileSync(identityPath(dir), 'utf8')) as SyncIdentity & { format_version: bigint };
  return { ...raw, format_version: Number(raw.format_version) };
}
const withoutTime = (text: string) => text.replace(/^ {2}"created_unix_secs": \d+,$/m, '  "created_unix_secs": 0,');
const text = (dir: string, file: string) => withoutTime(readFileSync(join(dir, file), 'utf8'));

/** What a restore in `mode` must have done with the identity of `source`. */
function expectIdentity(dest: string, mode: (typeof MODES)[number], source: SyncIdentity): void {
  if (mode === 'strip') {
    expect(existsSync(join(dest, '.powdb-sync'))).toBe(false);
    return;
  }
  const restored = identityOf(dest);
  if (mode === 'preserve') expect(restored).toEqual(source);
  else {
    expect(restored.database_id).toMatch(/^[0-9a-f]{32}$/);
    expect(restored.database_id).not.toBe(source.database_id);
    expect(restored.primary_generation).toBe(1n);
  }
}

describe('sync-enabled directories (engine 0.29, sync on)', () => {
  it('writes manifest.json and increment.json with the sync block byte for byte as the reference', async () => {
    const data = syncDb(600);
    const refFull = join(tmp(), 'ref-full');
    reference(gen, 'full', data, refFull);
    const ourFull = join(tmp(), 'our-full');
    const full = await fullBackup(data, ourFull);
    expect(full.sync?.identity).toEqual(identityOf(data));
    expect(full.sync?.source_lsn).toBe(full.source_lsn);
    expect(text(ourFull, 'manifest.json')).toContain('"sync": {');
    expect(text(ourFull, 'manifest.json')).toBe(text(refFull, 'manifest.json'));
    expect(existsSync(join(ourFull, '.powdb-sync'))).toBe(false);

    insertRows(gen, data, 600, 300);
    const ourInc = join(tmp(), 'our-inc');
    const inc = await incrementalBackup(data, ourFull, ourInc);
    expect(inc.sync?.source_lsn).toBe(inc.source_lsn);
    const refInc = join(tmp(), 'ref-inc');
    reference(gen, 'incr', data, refInc, '--base', refFull);
    expect(text(ourInc, 'increment.json')).toBe(text(refInc, 'increment.json'));
  });

  it('the reference restores our chain in each mode, and we restore its chain in each mode', async () => {
    const data = syncDb(400);
    const source = identityOf(data);
    const ours = tmp();
    await fullBackup(data, join(ours, 'full'));
    insertRows(gen, data, 400, 200);
    await incrementalBackup(data, join(ours, 'full'), join(ours, 'inc'));
    const theirs = tmp();
    insertRows(gen, data, 600, 100);
    reference(gen, 'full', data, join(theirs, 'full'));
    insertRows(gen, data, 700, 50);
    reference(gen, 'incr', data, join(theirs, 'inc'), '--base', join(theirs, 'full'));

    for (const mode of MODES) {
      const byReference = join(tmp(), `ref-${mode}`);
      reference(gen, 'restore', join(ours, 'full'), byReference, '--apply', join(ours, 'inc'), '--sync-mode', mode);
      expectIdentity(byReference, mode, source);
      expect(report(gen, byReference).T!.count).toBe(600);

      const byUs = join(tmp(), `ours-${mode}`);
      const r = await restoreChain(join(theirs, 'full'), [join(theirs, 'inc')], byUs, { syncMode: mode });
      expect(r.sync?.mode).toBe(mode);
      if (mode !== 'strip') expect(r.sync?.identity).toEqual(identityOf(byUs));
      expectIdentity(byUs, mode, source);
      expect(report(gen, byUs).T!.count).toBe(750); // the engine opens it, sync-aware where it is sync-enabled
    }
  });

  it('refuses preserve without a sync block, and a catalog that is not the one the block names', async () => {
    const plain = makeDb(gen, 50);
    const plainFull = join(tmp(), 'plain');
    await fullBackup(plain, plainFull);
    const dest = join(tmp(), 'dest');
    const err = await rejectsWith(restoreChain(plainFull, [], dest, { syncMode: 'preserve' }), 'ERR_SYNC_MODE');
    expect(err.message).toContain('no sync identity');
    expect(existsSync(dest)).toBe(false);
    expect((await restoreChain(plainFull, [], dest, { syncMode: 'fork' })).sync?.mode).toBe('fork');

    const data = syncDb(50);
    const full = join(tmp(), 'full');
    const m = await fullBackup(data, full);
    editText(join(full, 'manifest.json'), (t) => t.replace(m.sync!.catalog_blake3_hex, 'ab'.repeat(32)));
    for (const mode of MODES) {
      const target = join(tmp(), mode);
      const e = await rejectsWith(restoreChain(full, [], target, { syncMode: mode }), 'ERR_INTEGRITY');
      expect(e.message).toBe('restored catalog hash does not match sync snapshot metadata');
      expect(existsSync(target)).toBe(false);
    }
    const checked = await verifyBackup(full);
    expect(checked.errors.map((e) => e.code)).toContain('ERR_INTEGRITY');

    editText(join(full, 'manifest.json'), (t) => t.replace(/("sync": \{[\s\S]*?"source_lsn": )(\d+)/, '$1999999'));
    const bad = await rejectsWith(restoreChain(full, [], join(tmp(), 'x')), 'ERR_BAD_MANIFEST');
    expect(bad.message).toContain(`sync snapshot source_lsn 999999 does not match manifest source_lsn ${m.source_lsn}`);
  });

  it('refuses an increment that does not continue its base’s lineage, at backup and at restore', async () => {
    const data = makeDb(gen, 100, '--index');
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    fixture(gen, 'sync-enable', data);
    const e = await rejectsWith(incrementalBackup(data, full, join(tmp(), 'inc')), 'ERR_SYNC_LINEAGE');
    expect(e.message).toContain('sync identity changed between base and incremental backup');

    const synced = syncDb(100);
    const base = join(tmp(), 'base');
    await fullBackup(synced, base);
    insertRows(gen, synced, 100, 10);
    const inc = join(tmp(), 'inc2');
    await incrementalBackup(synced, base, inc);
    editText(join(inc, 'increment.json'), (t) =>
      t.replace(/"database_id": "[0-9a-f]+"/, `"database_id": "${'12'.repeat(16)}"`),
    );
    const broken = await rejectsWith(restoreChain(base, [inc], join(tmp(), 'r')), 'ERR_SYNC_LINEAGE');
    expect(broken.message).toContain('increment sync identity does not match full backup identity');
  });

  it('repositories keep the block: restore modes, export, and a new lineage starts a source of its own', async () => {
    const data = makeDb(gen, 300, '--index');
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const plain = await repo.backup(data);
    fixture(gen, 'sync-enable', data);
    const source = identityOf(data);
    // Its key is now the sync database id: a new source, which starts with a full backup.
    const full = await repo.backup(data, { type: 'incr' });
    expect(full.type).toBe('full');
    expect(full.parent).toBeNull();
    expect((await repo.info()).sources.map((s) => s.key)).toEqual([
      `${plain.source!.host}:${data}`,
      source.database_id,
    ]);
    insertRows(gen, data, 300, 30);
    const incr = await repo.backup(data);
    expect(incr.type).toBe('incr');
    expect(incr.parent).toBe(full.id);

    for (const mode of MODES) {
      const dest = join(tmp(), mode);
      const r = await repo.restore(dest, { syncMode: mode, source: source.database_id });
      expect(r.sync?.mode).toBe(mode);
      expectIdentity(dest, mode, source);
      expect(report(gen, dest).T!.count).toBe(330);
    }
    await rejectsWith(repo.restore(join(tmp(), 'p'), { asOf: plain.id, syncMode: 'preserve' }), 'ERR_SYNC_MODE');

    const exported = join(tmp(), 'exported');
    const { manifest } = await repo.export(exported, { source: source.database_id });
    expect(manifest.sync?.identity).toEqual(source);
    const byReference = join(tmp(), 'ref');
    reference(gen, 'restore', exported, byReference, '--sync-mode', 'preserve');
    expect(identityOf(byReference)).toEqual(source);
    expect(report(gen, byReference).T!.count).toBe(330);
    repo.close();
  });

  it('a named source across sync-enable: an increment is refused, the default takes a full backup', async () => {
    const data = makeDb(gen, 50);
    const repo = await PackedRepository.init(join(tmp(), 'repo'));
    const plain = await repo.backup(data, { source: 'db' });
    fixture(gen, 'sync-enable', data);
    await rejectsWith(repo.backup(data, { type: 'incr', source: 'db' }), 'ERR_SYNC_LINEAGE');
    const full = await repo.backup(data, { source: 'db' });
    expect(full).toMatchObject({ type: 'full', parent: null, source: { name: 'db' } });
    expect((await repo.info()).sources).toEqual([{ key: 'db', source: full.source, backups: [plain.id, full.id] }]);
    repo.close();
  });

  it('CLI: restore --sync-mode says what it did, and refuses an unknown mode', async () => {
    const data = syncDb(20);
    const full = join(tmp(), 'full');
    await fullBackup(data, full);
    const dest = join(tmp(), 'dest');
    const r = cli('restore', full, dest, '--sync-mode', 'fork');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sync identity forked \([0-9a-f]{32}\)/);
    expect(r.stdout).toContain(identityOf(dest).database_id);
    const stripped = cli('restore', full, join(tmp(), 'plain'));
    expect(stripped.stdout).toContain('sync identity stripped');
    const bad = cli('restore', full, join(tmp(), 'bad'), '--sync-mode', 'keep');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('keep');
  });
});
