// Restore targets: a time must carry its zone (the same text must not name
// different moments on different hosts), and every restore with a target
// says what it resolved to, which backup it chose and the LSN it reached;
// a target nothing reaches says so.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../lib/common/json.js';
import { CLI, cli, insertRows, makeDb, report, tmp } from './helpers.js';

function cliIn(tz: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TZ: tz } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Record {
  id: string;
  created: string;
  source_lsn: bigint;
}

describe('restore targets', () => {
  it('refuses a time without a zone under any TZ, and reads Z and offsets as the same moment', async () => {
    const data = makeDb('new', 50);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const b = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as Record;
    await sleep(1100);
    // The backup's own UTC wall time, written without a zone.
    const wall = new Date(Date.parse(b.created) + 1000).toISOString().slice(0, 19);
    for (const tz of ['Asia/Tokyo', 'America/New_York', 'UTC']) {
      const dest = join(tmp(), 'r');
      const r = cliIn(tz, 'restore', '--repo', repo, dest, '--as-of', wall);
      expect(r.code, `${tz}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`error [ERR_INVALID_ARG]: --as-of ${wall} has no time zone: add Z for UTC (${wall}Z)`);
    }
    const tokyo = new Date(Date.parse(`${wall}Z`) + 9 * 3600_000).toISOString().slice(0, 19) + '+09:00';
    for (const target of [`${wall}Z`, tokyo]) {
      const dest = join(tmp(), 'r');
      const r = cliIn('Asia/Tokyo', 'restore', '--repo', repo, dest, '--as-of', target);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(
        `target ${target} = ${wall}.000Z (UTC): backup ${b.id} (taken ${b.created}, LSN ${b.source_lsn}), LSN reached ${b.source_lsn}`,
      );
      expect(r.stdout).not.toContain('note:');
      expect(report('new', dest).T!.count).toBe(50);
    }
  });

  it('refuses a time in the future, and says so when nothing reaches a target between backups', async () => {
    const data = makeDb('new', 40);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const first = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as Record;
    await sleep(2100);
    insertRows('new', data, 40, 30);
    const second = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as Record;
    expect(second.source_lsn).toBeGreaterThan(first.source_lsn + 1n);

    const tomorrow = new Date(Date.now() + 86_400_000).toISOString();
    const future = cli('restore', '--repo', repo, join(tmp(), 'f'), '--as-of', tomorrow);
    expect(future.code).toBe(2);
    expect(future.stderr).toContain('is in the future');

    // Between the two backups, with no WAL archive: the first backup, said out loud.
    const between = first.source_lsn + 1n;
    const byLsn = cli('restore', '--repo', repo, join(tmp(), 'l'), '--as-of', String(between), '--json');
    expect(byLsn.code).toBe(0);
    const r = parseJson(byLsn.stdout) as { target: { backup: string; lsn: bigint; exact: boolean; note: string } };
    expect(r.target).toMatchObject({ backup: first.id, lsn: first.source_lsn, exact: false });
    expect(r.target.note).toContain(`LSN ${between} is past backup ${first.id}`);

    const later = new Date(Date.parse(first.created) + 1500).toISOString();
    const byTime = cli('restore', '--repo', repo, join(tmp(), 't'), '--as-of', later);
    expect(byTime.code).toBe(0);
    expect(byTime.stdout).toContain(`: backup ${first.id} (taken ${first.created}, LSN ${first.source_lsn})`);
    expect(byTime.stdout).toMatch(
      new RegExp(`note: no backup or archived WAL reaches ${later}: restored backup ${first.id}`),
    );

    // A target a backup reaches exactly carries no note.
    const exact = cli('restore', '--repo', repo, join(tmp(), 'e'), '--as-of', String(second.source_lsn));
    expect(exact.stdout).toContain(`LSN reached ${second.source_lsn}`);
    expect(exact.stdout).not.toContain('note:');
  });
});
