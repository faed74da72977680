// Every backup records its source (host, path, a sync-enabled database's id).
// A format-1 repository backs up one database: a backup of another one, or of
// one whose LSN runs backwards, is refused instead of chained. A packed
// repository holds many sources (many-sources.spec.ts): another database
// starts a source of its own; an LSN running backwards within one is refused.
import { cpSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repository } from '../index.js';
import { cli, fixture, makeDb, rejectsWith, report, tmp } from './helpers.js';

describe('backup sources (format 1)', () => {
  const format = 1;
  it('refuses a second database and an LSN that runs backwards; --same-database accepts them', async () => {
    const a = makeDb('new', 300);
    const b = makeDb('new', 20);
    const dir = join(tmp(), 'repo');
    const repo = await Repository.init(dir, { format });
    try {
      const first = await repo.backup(a);
      expect(first.source).toEqual({ host: hostname(), path: a });

      const other = await rejectsWith(repo.backup(b), 'ERR_OTHER_DATABASE');
      expect(other.message).toContain(`its newest backup ${first.id} is of ${hostname()}:${a}`);
      expect(other.message).toContain('--same-database');
      expect((await repo.list()).map((r) => r.id)).toEqual([first.id]);

      // The same path, holding a new database with a lower LSN.
      rmSync(a, { recursive: true });
      fixture('new', 'create', a, '--rows', 5);
      const back = await rejectsWith(repo.backup(a), 'ERR_LSN_BACKWARDS');
      expect(back.message).toContain(`behind the newest backup ${first.id} (LSN ${first.source_lsn})`);
      expect((await repo.list()).length).toBe(1);
      const dest = join(tmp(), 'r');
      await repo.restore(dest);
      expect(report('new', dest).T!.count).toBe(300);

      const taken = await repo.backup(b, { sameDatabase: true });
      expect(taken.source?.path).toBe(b);
    } finally {
      repo.close();
    }
    const info = cli('info', '--repo', dir);
    expect(info.stdout).toContain(`${hostname()}:${a}`);
    expect(info.stdout).toContain(`${hostname()}:${b}`);
    expect(cli('backup', a, '--repo', dir).code).toBe(1);
  });
});

describe('backup sources of a sync-enabled database (packed repository)', () => {
  it('follow its database id when it moves to another path', async () => {
    const a = makeDb('new', 50);
    fixture('new', 'sync-enable', a);
    const repo = await Repository.init(join(tmp(), 'repo'));
    try {
      const first = await repo.backup(a);
      expect(first.source?.database_id).toMatch(/^[0-9a-f]{32}$/);
      const moved = join(tmp(), 'moved');
      cpSync(a, moved, { recursive: true });
      expect((await repo.backup(moved)).source).toEqual({ ...first.source, path: moved });

      // Another sync-enabled database is another source: a full backup of its own.
      const other = makeDb('new', 50);
      fixture('new', 'sync-enable', other);
      const taken = await repo.backup(other);
      expect(taken).toMatchObject({ type: 'full', parent: null });
      expect(taken.source?.database_id).not.toBe(first.source?.database_id);
      // Named, a source is its name wherever it is; its backups must be of one database.
      const named = await repo.backup(a, { source: 'orders' });
      expect(named).toMatchObject({ type: 'full', source: { name: 'orders', database_id: first.source?.database_id } });
      await rejectsWith(repo.backup(other, { source: 'orders' }), 'ERR_OTHER_DATABASE');
      expect(await repo.backup(moved, { source: 'orders' })).toMatchObject({ type: 'incr', parent: named.id });
    } finally {
      repo.close();
    }
  });
});
