// A repository backs up one database: every backup records its source (host,
// path, a sync-enabled database's id), and a backup of another database, or
// of one whose LSN runs backwards, is refused instead of chained.
import { cpSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repository } from '../index.js';
import { cli, fixture, makeDb, rejectsWith, report, tmp } from './helpers.js';

describe.each([1, 2] as const)('backup sources (format %s)', (format) => {
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

describe('backup sources of a sync-enabled database', () => {
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

      const other = makeDb('new', 50);
      fixture('new', 'sync-enable', other);
      await rejectsWith(repo.backup(other), 'ERR_OTHER_DATABASE');
    } finally {
      repo.close();
    }
  });
});
