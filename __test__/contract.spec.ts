// The promises the README makes to scripts and API users: stable error codes
// (every one thrown is declared), exit codes, one JSON key style, API types,
// and refusals that leave nothing behind.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackupError, Repository } from '../index.js';
import { parseJson } from '../lib/common/json.js';
import { CLI, ROOT, cli, makeDb, rejectsWith, tmp } from './helpers.js';

/** Every file under `dir` whose name ends with `ext`. */
function sources(dir: string, ext: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .map((f) => join(dir, f));
}

describe('error codes', () => {
  it('every code the package throws is declared in BackupErrorCode', () => {
    const thrown = new Set<string>();
    for (const file of [...sources(join(ROOT, 'lib'), '.ts'), ...sources(join(ROOT, 'crate', 'src'), '.rs')]) {
      for (const m of readFileSync(file, 'utf8').matchAll(/["'`](ERR_[A-Z0-9_]+)/g)) thrown.add(m[1]!);
    }
    const errors = readFileSync(join(ROOT, 'lib', 'common', 'errors.ts'), 'utf8');
    const declared = new Set([...errors.matchAll(/\| '(ERR_[A-Z0-9_]+)'/g)].map((m) => m[1]!));
    expect(thrown.size).toBeGreaterThan(30);
    expect([...thrown].filter((c) => !declared.has(c)).sort()).toEqual([]);
    // The README's "When something goes wrong" gives each a remedy.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const remedies = readme.slice(readme.indexOf('## When something goes wrong'));
    expect([...declared].filter((c) => !remedies.includes(`\`${c}\``)).sort()).toEqual([]);
  });

  it('a closed repository fails with a BackupError of its own code', async () => {
    const repo = await Repository.init(join(tmp(), 'repo'));
    repo.close();
    repo.close(); // twice is harmless
    const e = await rejectsWith(repo.list(), 'ERR_REPO_CLOSED');
    expect(e).toBeInstanceOf(BackupError);
  });

  it('Repository.open() has every method the README calls; format 1 refuses the format-2 ones by code', async () => {
    // The types: compiled by tsc against the package's own declarations.
    const tsc = spawnSync(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, '__test__', 'types')],
      { encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    const legacy = await Repository.open((await Repository.init(join(tmp(), 'old'), { format: 1 })).dir);
    const e = await rejectsWith(legacy.export(join(tmp(), 'x')), 'ERR_UNSUPPORTED_FORMAT');
    expect(e.message).toContain('powdb-backup migrate');
    await rejectsWith(legacy.listKeys(), 'ERR_UNSUPPORTED_FORMAT');
  });
});

describe('the command line contract', () => {
  it('usage errors and invalid option values exit 2 with one line and a pointer to --help', () => {
    const data = makeDb('new', 10);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const cases = [
      ['backup'],
      ['backup', data, '--repo', repo, '--concurrency', '99'],
      ['restore', '--repo', repo, join(tmp(), 'x'), '--as-of', 'yesterday-ish'],
      ['expire', '--repo', repo, '--retain-full', 'many'],
      ['init', 'gs://bucket/x'],
    ];
    for (const args of cases) {
      const r = cli(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
      expect(r.stderr).toContain('--help');
    }
  });

  it('init refuses unknown URL schemes and empty passwords, leaving nothing behind', () => {
    const cwd = tmp();
    const gs = spawnSync(process.execPath, [CLI, 'init', 'gs://bucket/x'], { cwd, encoding: 'utf8' });
    expect(gs.stderr).toContain('gs:// is not supported');
    expect(readdirSync(cwd)).toEqual([]);

    const empty = join(cwd, 'empty-password');
    writeFileSync(empty, '');
    const repo = join(cwd, 'repo');
    const r = cli('init', repo, '--encrypt', '--password-file', empty);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_PASSWORD_REQUIRED');
    expect(existsSync(repo)).toBe(false);
  });

  it('key list on a plain repository is ERR_NOT_ENCRYPTED', () => {
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const r = cli('key', 'list', '--repo', repo);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error \[ERR_NOT_ENCRYPTED\]/);
    expect(r.stdout).toBe('');
  });

  it('JSON keys are snake_case in every command, with the older camelCase ones kept as aliases', () => {
    const data = makeDb('new', 10);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    const backup = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as Record<string, unknown>;
    const restored = parseJson(cli('restore', '--repo', repo, join(tmp(), 'r'), '--json').stdout) as Record<
      string,
      unknown
    >;
    expect(restored.source_lsn).toBe(backup.source_lsn);
    expect(restored.sourceLsn).toBe(backup.source_lsn);
  });

  it('warnings are one line of their own, not Node’s warning format', () => {
    const data = makeDb('new', 10);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    expect(cli('backup', data, '--repo', repo).code).toBe(0);
    const [snapshot] = readdirSync(join(repo, 'snapshots'));
    writeFileSync(join(repo, 'snapshots', snapshot!), 'damaged');
    const r = cli('backup', data, '--repo', repo, '--type', 'full');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^warning: backup ${snapshot} cannot be read .*; run verify\\n$`));
    expect(r.stderr).not.toContain('(node:');
  });
});

describe('messages that say what to do next', () => {
  it('a missing repository suggests init; a non-empty restore destination mentions --delta', () => {
    const missing = join(tmp(), 'nowhere');
    const info = cli('info', '--repo', missing);
    expect(info.code).toBe(1);
    expect(info.stderr).toContain(`repository ${missing} does not exist: create it with powdb-backup init ${missing}`);

    const data = makeDb('new', 10);
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    expect(cli('backup', data, '--repo', repo).code).toBe(0);
    const full = cli('restore', '--repo', repo, data);
    expect(full.stderr).toMatch(/^error \[ERR_DEST_NOT_EMPTY\]: .*add --delta\)\n$/);
  });

  it('verify ends with one verdict, and never calls a damaged backup intact', () => {
    const data = makeDb('new', 2000, '--index');
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo, '--compression', 'none').code).toBe(0);
    const b = parseJson(cli('backup', data, '--repo', repo, '--json').stdout) as { id: string };
    const healthy = cli('verify', '--repo', repo);
    expect(healthy.code).toBe(0);
    expect(healthy.stdout.trimEnd().split('\n').at(-1)).toBe('verdict: 1 of 1 backup restorable');

    const packs = join(repo, 'data');
    const pack = readdirSync(packs, { recursive: true, encoding: 'utf8' })
      .map((p) => join(packs, p))
      .find((p) => statSync(p).isFile())!;
    const bytes = readFileSync(pack);
    const at = bytes.length >> 1;
    bytes[at] = bytes[at]! ^ 0x5a;
    writeFileSync(pack, bytes);
    const damaged = cli('verify', '--repo', repo);
    expect(damaged.code).toBe(1);
    const lines = damaged.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(
      `verdict: 0 of 1 backup restorable; damaged: ${b.id}; next: powdb-backup repair --repo ${repo}, then a new backup, then verify again (README: When something goes wrong)`,
    );
    expect(damaged.stdout).not.toContain('every chunk present and intact');
  });

  it('expire --dry-run says how much the prune would free, and frees nothing', () => {
    const data = makeDb('new', 3000, '--pad', '200');
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    expect(cli('backup', data, '--repo', repo, '--source', 'db').code).toBe(0);
    const other = makeDb('new', 3000, '--pad', '300');
    // One source on purpose, so that --retain-full 1 removes the first.
    expect(cli('backup', other, '--repo', repo, '--source', 'db', '--type', 'full', '--same-database').code).toBe(0);
    const files = () => readdirSync(repo, { recursive: true }).length;
    const before = files();
    const dry = cli('expire', '--repo', repo, '--retain-full', '1', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const r = parseJson(dry.stdout) as { removed: string[]; pruned: { bytes_freed: bigint } };
    expect(r.removed).toHaveLength(1);
    expect(r.pruned.bytes_freed).toBeGreaterThan(0n);
    expect(files()).toBe(before);
    const text = cli('expire', '--repo', repo, '--retain-full', '1', '--dry-run').stdout;
    expect(text).toMatch(/would prune .* would be freed/);
    const real = parseJson(cli('expire', '--repo', repo, '--retain-full', '1', '--json').stdout) as {
      pruned: { bytes_freed: bigint };
    };
    // The estimate leaves out the index the prune rewrites and the headers of repacked packs.
    const [estimate, freed] = [Number(r.pruned.bytes_freed), Number(real.pruned.bytes_freed)];
    expect(Math.abs(estimate - freed)).toBeLessThan(estimate * 0.05 + 65536);
  });
});

describe('info after a prune', () => {
  it('shows what each kept backup holds, not only the little it added when taken', () => {
    const data = makeDb('new', 3000, '--pad', '200');
    const repo = join(tmp(), 'repo');
    expect(cli('init', repo).code).toBe(0);
    expect(cli('backup', data, '--repo', repo).code).toBe(0);
    // Nothing changed: the second full backup adds (next to) nothing, then the first one goes.
    expect(cli('backup', data, '--repo', repo, '--type', 'full').code).toBe(0);
    expect(cli('expire', '--repo', repo, '--retain-full', '1').code).toBe(0);
    const info = parseJson(cli('info', '--repo', repo, '--json').stdout) as {
      backups: { stored_bytes: bigint; held_bytes: bigint }[];
      totals: { stored_bytes: bigint };
    };
    expect(info.backups).toHaveLength(1);
    const [kept] = info.backups;
    expect(kept!.held_bytes).toBeGreaterThan(kept!.stored_bytes * 10n);
    expect(kept!.held_bytes * 2n).toBeGreaterThan(info.totals.stored_bytes);
    expect(kept!.held_bytes).toBeLessThanOrEqual(info.totals.stored_bytes);
    expect(cli('info', '--repo', repo).stdout.split('\n')[0]).toMatch(/ added +holds /);
  });
});
