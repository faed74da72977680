import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../lib/common/json.js';
import { readIncrement, readManifest } from '../index.js';
import { cli, insertRows, makeDb, report, tmp } from './helpers.js';

describe('the powdb-backup command', () => {
  it('prints help with exit 0 and usage errors with exit 2', () => {
    const help = cli('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/backup \[options\] <dataDir> \[dest\]/);
    expect(help.stdout).toMatch(/restore \[options\] \[backupDir\] \[dest\]/);
    for (const command of ['init', 'verify', 'info', 'expire']) expect(help.stdout).toContain(command);
    expect(cli('backup', '--help').stdout).toContain('--base <backupDir>');

    for (const args of [['backup'], ['restore', 'only-one'], ['frobnicate'], ['backup', 'a', 'b', '--bogus']]) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: /);
    }
  });

  it('backs up, increments and restores with one-line summaries', async () => {
    const data = makeDb('new', 200, '--index');
    const full = join(tmp(), 'full');
    const b = cli('backup', data, full);
    expect(b.code).toBe(0);
    const m = await readManifest(full);
    expect(b.stdout).toBe(
      `full backup: ${m.files.length} files, ${b.stdout.match(/, ([\d.]+ KiB),/)![1]}, source LSN ${m.source_lsn} -> ${full}\n`,
    );

    insertRows('new', data, 200, 100);
    const inc = join(tmp(), 'inc');
    const i = cli('backup', data, inc, '--base', full);
    expect(i.code).toBe(0);
    const im = await readIncrement(inc);
    expect(i.stdout).toContain(`LSN ${im.base_source_lsn} -> ${im.source_lsn} -> ${inc}`);
    expect(i.stdout.trim().split('\n')).toHaveLength(1);

    const dest = join(tmp(), 'restored');
    const r = cli('restore', full, dest, '--apply', inc);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^restored \\d+ files, .*, 1 increment applied, LSN ${im.source_lsn} -> `));
    expect(report('new', dest).T!.count).toBe(300);
  });

  it('prints exact JSON with --json', async () => {
    const data = makeDb('old', 20);
    const full = join(tmp(), 'full');
    const out = parseJson(cli('backup', data, full, '--json').stdout) as any;
    expect(out.kind).toBe('full');
    expect(out.manifest.source_lsn).toBe((await readManifest(full)).source_lsn);

    const restored = parseJson(cli('restore', full, join(tmp(), 'r'), '--json').stdout) as any;
    expect(restored.sourceLsn).toBe(out.manifest.source_lsn);
    expect(restored.increments).toBe(0n);
  });

  it('reports failures on stderr as "error [CODE]: ..." with exit 1, and with --json also on stdout', () => {
    const r = cli('restore', join(tmp(), 'missing'), join(tmp(), 'dest'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error \[ERR_NOT_A_BACKUP\]: .*missing is not a backup: manifest.json is missing\n$/);
    expect(r.stdout).toBe('');

    const j = cli('restore', join(tmp(), 'missing'), join(tmp(), 'dest'), '--json');
    expect(j.code).toBe(1);
    const { error } = JSON.parse(j.stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('ERR_NOT_A_BACKUP');
    expect(error.message).toMatch(/missing is not a backup: manifest.json is missing$/);

    const u = cli('backup', '--json');
    expect(u.code).toBe(2);
    expect((JSON.parse(u.stdout) as { error: { code: string } }).error.code).toBe('ERR_USAGE');
  });

  it('prints the package and native addon versions with --version and -V', () => {
    const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    const cargo = readFileSync(join(import.meta.dirname, '..', 'crate', 'Cargo.toml'), 'utf8');
    const native = /^version = "([^"]+)"/m.exec(cargo)![1];
    for (const flag of ['--version', '-V']) {
      const r = cli(flag);
      expect(r.code, flag).toBe(0);
      expect(r.stdout).toBe(`powdb-backup ${version} (native addon ${native})\n`);
    }
  });
});
