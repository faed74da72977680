// The package as users get it: packed, installed into an empty project with
// --ignore-scripts (so no compiler can run), then used through require,
// import, types and the CLI, on a real engine database.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, ids, makeDb, report, tmp } from './helpers.js';

let consumer: string;
let installed: string;
let tarball: string;
let packed: { files: { path: string }[]; size: number };

const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env } });

// Lives for the whole file (tmp() dirs are removed after each test).
const scratch = mkdtempSync(join(tmpdir(), 'powdb-backup-package-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

beforeAll(() => {
  execFileSync('npm', ['run', 'prebuild'], { cwd: ROOT, stdio: 'ignore' });
  const out = join(scratch, 'pack');
  mkdirSync(out);
  [packed] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: ROOT, encoding: 'utf8' }),
  );
  tarball = join(
    out,
    readdirSync(out).find((f) => f.endsWith('.tgz'))!,
  );
  consumer = join(scratch, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], {
    cwd: consumer,
    stdio: 'ignore',
  });
  installed = join(consumer, 'node_modules', 'powdb-backup');
}, 300_000);

describe('the packed package', () => {
  it('holds the prebuild, types, CLI and crate sources, but no tests, build dirs or fixtures', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths.some((p) => /^prebuilds\/linux-x64\/.*\.node$/.test(p))).toBe(true);
    for (const p of [
      'dist/index.js',
      'dist/index.cjs',
      'dist/index.d.ts',
      'dist/lib/cli.js',
      'scripts/install.mjs',
      'crate/src/lib.rs',
      'Cargo.lock',
    ]) {
      expect(paths, p).toContain(p);
    }
    expect(paths.filter((p) => /^(__test__|target|tools|build|\.tmp|npm)\//.test(p))).toEqual([]);
    // The prebuild embeds an HTTP/2 + TLS client for object storage and, for online backup, the PowDB
    // engine (about 9.5 MB stripped, 5.0 MB packed); the bound catches anything else packed by mistake.
    expect(statSync(tarball).size).toBeLessThan(6_000_000);
  });

  it('loads with require and with import, from the bundled prebuild', () => {
    const cjs = run(
      process.execPath,
      ['-e', "const m = require('powdb-backup'); console.log(typeof m.fullBackup, typeof m.verifyChain)"],
      consumer,
    );
    expect(cjs.stdout.trim()).toBe('function function');
    const esm = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { restoreChain, BackupError } from 'powdb-backup'; console.log(typeof restoreChain, typeof BackupError)",
      ],
      consumer,
    );
    expect(esm.stdout.trim()).toBe('function function');
    expect(existsSync(join(installed, 'build'))).toBe(false); // nothing was compiled
  });

  it('type-checks a consumer against its declarations', () => {
    writeFileSync(
      join(consumer, 'use.ts'),
      [
        "import { fullBackup, type BackupManifest, type VerifyReport, BackupError } from 'powdb-backup';",
        'const lsn: Promise<bigint> = fullBackup("/data", "/backup").then((m: BackupManifest) => m.source_lsn);',
        'const report: VerifyReport | undefined = undefined;',
        'export { lsn, report, BackupError };',
      ].join('\n'),
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          strict: true,
          noEmit: true,
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['use.ts'],
      }),
    );
    const tsc = run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', consumer],
      consumer,
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('runs its CLI with npx', () => {
    const help = run('npx', ['--no-install', 'powdb-backup', '--help'], consumer);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('verify [options] [backupDir]');
  });

  it('backs up and restores a real engine database', () => {
    const data = makeDb('new', 700, '--index');
    const backup = join(tmp(), 'full');
    const restored = join(tmp(), 'restored');
    const cli = join(consumer, 'node_modules', '.bin', 'powdb-backup');
    expect(run(cli, ['backup', data, backup], consumer).status).toBe(0);
    expect(run(cli, ['restore', backup, restored], consumer).status).toBe(0);
    expect(report('new', restored).T!.ids).toEqual(ids(0, 700));
  });

  it('explains every place it looked when no addon can be found', () => {
    const prebuilds = join(installed, 'prebuilds');
    renameSync(prebuilds, `${prebuilds}.hidden`);
    try {
      const r = run(process.execPath, ['-e', "require('powdb-backup')"], consumer, {
        POWDB_BACKUP_NATIVE: '/nowhere/x.node',
      });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('could not load its native addon. Tried, in order:');
      expect(r.stderr).toContain('POWDB_BACKUP_NATIVE (explicit override): /nowhere/x.node does not exist');
      expect(r.stderr).toContain(
        `local build (build/Release): ${join(installed, 'build', 'Release', 'powdb_backup.node')} does not exist`,
      );
      expect(r.stderr).toMatch(/bundled prebuild \(prebuilds\/linux-x64\): No native build was found/);
      expect(r.stderr).toMatch(/platform package @powdb-backup\/native-linux-x64-gnu: Cannot find module/);
      expect(r.stderr).toContain('npm rebuild powdb-backup');
    } finally {
      renameSync(`${prebuilds}.hidden`, prebuilds);
    }
  });

  it('builds the addon from source when asked, in a scratch workspace, and then loads that build', () => {
    const build = run(process.execPath, [join(installed, 'scripts', 'install.mjs')], installed, {
      POWDB_BACKUP_BUILD_FROM_SOURCE: '1',
    });
    expect(build.status, build.stderr).toBe(0);
    expect(build.stderr).toContain('building the native addon from source with cargo');
    expect(existsSync(join(installed, 'build', 'Release', 'powdb_backup.node'))).toBe(true);
    const prebuilds = join(installed, 'prebuilds');
    renameSync(prebuilds, `${prebuilds}.hidden`);
    try {
      const r = run(process.execPath, ['-e', "console.log(typeof require('powdb-backup').fullBackup)"], consumer);
      expect(r.stdout.trim()).toBe('function');
    } finally {
      renameSync(`${prebuilds}.hidden`, prebuilds);
    }
  }, 600_000);
});
