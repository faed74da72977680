// The backup repository: ids, automatic bases, catalog, restore as of a
// moment, expiry that keeps chains whole, and a lock against two writers.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repository, restore as plainRestore } from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { CLI, GENS, cli, ids, insertRows, makeDb, rejectsWith, report, tmp } from './helpers.js';

/** A repository holding: full (100 rows), incr (+50), incr (+50), diff (+50 on the full). */
async function populated(gen: (typeof GENS)[number], format: 1 | 2) {
  const data = makeDb(gen, 100, '--index');
  const repo = await Repository.init(join(tmp(), 'repo'), { format });
  const full = await repo.backup(data, { type: 'incr' }); // no full yet: becomes a full
  insertRows(gen, data, 100, 50);
  const i1 = await repo.backup(data);
  insertRows(gen, data, 150, 50);
  const i2 = await repo.backup(data, { type: 'incr' });
  insertRows(gen, data, 200, 50);
  const d1 = await repo.backup(data, { type: 'diff' });
  return { data, repo, full, i1, i2, d1 };
}

const CASES = GENS.flatMap((gen) => [1, 2].map((format) => [gen, format as 1 | 2] as const));

describe.each(CASES)('backup repository (engine %s, format %s)', (gen, format) => {
  /** What a restore applies: the chain in format 1, the backup alone in format 2. */
  const applied = (chain: string[]) => (format === 1 ? chain : chain.slice(-1));

  it('stores full, incr and diff backups with the right bases and a catalog', async () => {
    const { repo, full, i1, i2, d1 } = await populated(gen, format);
    expect(statSync(repo.dir).mode & 0o777).toBe(0o700);
    expect(full).toMatchObject({ type: 'full', parent: null, base_source_lsn: null });
    expect(full.id).toMatch(/^\d{8}T\d{6}Z-F$/);
    expect(i1).toMatchObject({ type: 'incr', parent: full.id, base_source_lsn: full.source_lsn });
    expect(i2).toMatchObject({ type: 'incr', parent: i1.id, base_source_lsn: i1.source_lsn });
    expect(d1).toMatchObject({ type: 'diff', parent: full.id, base_source_lsn: full.source_lsn });
    expect(d1.id).toMatch(/-D(-\d+)?$/);
    expect(i2.pages).toBeGreaterThan(0);
    expect((await repo.list()).map((r) => r.id)).toEqual([full.id, i1.id, i2.id, d1.id]);
    expect((await repo.info(i2.id)).chain!.map((r) => r.id)).toEqual([full.id, i1.id, i2.id]);
    if (format === 1) {
      // Each backup stays in the reference format: a plain restore reads the full one.
      const plain = join(tmp(), 'plain');
      await plainRestore(join(repo.dir, 'backups', full.id), plain);
      expect(report(gen, plain).T!.count).toBe(100);
    }
  });

  it('restores as of an id, an LSN and a time, and refuses a target before the first backup', async () => {
    const { repo, full, i1, i2, d1 } = await populated(gen, format);
    const rows = async (asOf?: string | bigint | Date) => {
      const dest = join(tmp(), 'r');
      const r = await repo.restore(dest, { asOf });
      return { applied: r.applied, count: report(gen, dest).T!.count };
    };
    expect(await rows(i1.id)).toEqual({ applied: applied([full.id, i1.id]), count: 150 });
    expect(await rows(i2.source_lsn)).toEqual({ applied: applied([full.id, i1.id, i2.id]), count: 200 });
    expect(await rows(i2.source_lsn - 1n)).toEqual({ applied: applied([full.id, i1.id]), count: 150 });
    expect(await rows()).toEqual({ applied: applied([full.id, d1.id]), count: 250 });
    expect(await rows(new Date(Date.parse(d1.created) + 1000))).toMatchObject({ count: 250 });
    const t = report(gen, (await repo.restore(join(tmp(), 'ids'), { asOf: d1.id })).dest).T!;
    expect(t.ids).toEqual(ids(0, 250));
    const err = await rejectsWith(
      repo.restore(join(tmp(), 'x'), { asOf: new Date(Date.parse(full.created) - 60_000) }),
      'ERR_NO_BACKUP',
    );
    expect(err.message).toContain(`the first is ${full.id}`);
  });

  it('expires old chains, keeps every retained one restorable, and survives an interruption', async () => {
    const { data, repo, full, i1, i2, d1 } = await populated(gen, format);
    insertRows(gen, data, 250, 10);
    const full2 = await repo.backup(data, { type: 'full' });
    const i3 = await repo.backup(data);

    const dry = await repo.expire({ retainFull: 1, dryRun: true });
    expect(dry.removed).toEqual([full.id, i1.id, i2.id, d1.id]);
    expect((await repo.list()).length).toBe(6);
    expect((await repo.expire({ retainFull: 2 })).removed).toEqual([]);

    if (format === 1) {
      // An expire killed after its first rename: readers see only whole chains; the next writer finishes it.
      renameSync(join(repo.dir, 'backups', d1.id), join(repo.dir, 'backups', `.expiring-${d1.id}`));
      expect((await repo.list()).map((r) => r.id)).toEqual([full.id, i1.id, i2.id, full2.id, i3.id]);
    }
    expect((await repo.verify()).every((v) => v.report.ok)).toBe(true);

    const done = await repo.expire({ retainFull: 1 });
    expect(done.removed).toEqual(format === 1 ? [full.id, i1.id, i2.id] : [full.id, i1.id, i2.id, d1.id]);
    expect(done.kept).toEqual([full2.id, i3.id]);
    expect((await repo.list()).map((r) => r.id)).toEqual([full2.id, i3.id]);
    if (format === 1) expect(readdirSync(join(repo.dir, 'backups')).sort()).toEqual([full2.id, i3.id].sort());
    const dest = join(tmp(), 'after-expire');
    await repo.restore(dest);
    expect(report(gen, dest).T!.count).toBe(260);
  });
});

describe('repository CLI and concurrency', () => {
  it('init, backup, info, restore --as-of, verify and expire with exact JSON', async () => {
    const data = makeDb('new', 80);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const first = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as { id: string; source_lsn: bigint };
    expect(typeof first.source_lsn).toBe('bigint');
    insertRows('new', data, 80, 20);
    const second = cli('backup', data, '--repo', repo, '--type', 'incr');
    expect(second.stdout).toMatch(/^backup \d{8}T\d{6}Z-I(-\d+)? \(incr on /);

    const info = parseJson(cli('info', '--repo', repo, '--json').stdout) as { backups: { id: string }[] };
    expect(info.backups.map((b) => b.id)[0]).toBe(first.id);
    expect(cli('info', '--repo', repo).stdout).toContain(first.id);

    const dest = join(tmp(), 'r');
    const restored = cli('restore', '--repo', repo, dest, '--as-of', String(first.source_lsn));
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored ${first.id}`);
    expect(report('new', dest).T!.count).toBe(80);

    expect(cli('verify', '--repo', repo).code).toBe(0);
    expect(cli('expire', '--repo', repo, '--retain-full', '1', '--dry-run').stdout).toMatch(/would remove 0 backups/);
    expect(cli('backup', data, 'somewhere', '--repo', repo).code).toBe(2);
    expect(cli('restore', '--repo', repo, dest, '--as-of', 'not-a-time').code).toBe(2); // a usage error
  });

  it.each([1, 2] as const)(
    'an expire killed midway leaves a repository that reads correctly, and the next run finishes it (format %s)',
    async (format) => {
      const data = makeDb('new', 60);
      const repo = await Repository.init(join(tmp(), 'repo'), { format });
      const old = [await repo.backup(data)];
      insertRows('new', data, 60, 10);
      old.push(await repo.backup(data));
      const kept = await repo.backup(data, { type: 'full' });

      const env = { ...process.env, POWDB_BACKUP_CRASH_AT: 'expire-renamed:1' };
      const child = spawn(process.execPath, [CLI, 'expire', '--repo', repo.dir, '--retain-full', '1'], { env });
      const [, signal] = await once(child, 'exit');
      expect(signal).toBe('SIGKILL');

      expect((await repo.list()).map((r) => r.id)).toEqual([old[0]!.id, kept.id]); // the chain cut short is gone whole
      expect((await repo.verify()).every((v) => v.report.ok)).toBe(true);
      const dest = join(tmp(), 'r');
      await repo.restore(dest, { asOf: old[0]!.id });
      expect(report('new', dest).T!.count).toBe(60);

      expect((await repo.expire({ retainFull: 1 })).removed).toEqual([old[0]!.id]);
      expect((await repo.list()).map((r) => r.id)).toEqual([kept.id]);
    },
  );

  it.each([1, 2] as const)(
    'lets only one writer in at a time; the other gets a clear error and the repository stays whole (format %s)',
    async (format) => {
      const data = makeDb('new', 40000, '--index');
      const repo = join(tmp(), 'repo');
      await Repository.init(repo, { format });
      const start = () =>
        spawn(process.execPath, [CLI, 'backup', data, '--repo', repo], { stdio: ['ignore', 'pipe', 'pipe'] });
      const runs = [start(), start()].map(async (child) => {
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        const [code] = await once(child, 'exit');
        return { code, stderr };
      });
      const results = await Promise.all(runs);
      const ok = results.filter((r) => r.code === 0);
      expect(ok.length).toBeGreaterThanOrEqual(1);
      for (const r of results.filter((r) => r.code !== 0))
        expect(r.stderr).toMatch(/is in use by another backup|is in use: its LOCK/);
      const repository = await Repository.open(repo);
      expect((await repository.list()).length).toBe(ok.length);
      expect((await repository.verify()).every((v) => v.report.ok)).toBe(true);
      expect(existsSync(join(repo, 'LOCK'))).toBe(false);
    },
  );
});
