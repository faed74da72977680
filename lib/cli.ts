#!/usr/bin/env node
// The `powdb-backup` command: the upstream CLI surface over the public API.
import { Command, CommanderError } from 'commander';
import { fullBackup, incrementalBackup } from './backup.js';
import { toBackupError } from './errors.js';
import { formatBytes, plural } from './format.js';
import { formatJson } from './json.js';
import type { BackupManifest, IncrementManifest } from './manifest.js';
import { restoreChain } from './restore.js';
import { verifyChain, type VerifyReport } from './verify.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function print(json: boolean, value: unknown, line: string): void {
  process.stdout.write(json ? `${formatJson(value)}\n` : `${line}\n`);
}

function fullSummary(m: BackupManifest, dest: string): string {
  const bytes = m.files.reduce((sum, f) => sum + f.len, 0n);
  return `full backup: ${plural(m.files.length, 'file')}, ${formatBytes(bytes)}, source LSN ${m.source_lsn} -> ${dest}`;
}

function incrementSummary(m: IncrementManifest, dest: string): string {
  let bytes = 0n;
  let pages = 0;
  for (const c of m.changed) {
    if ('Whole' in c) bytes += c.Whole.len;
    else {
      bytes += c.Pages.delta_len;
      pages += c.Pages.page_indices.length;
    }
  }
  return (
    `incremental backup: ${plural(m.changed.length, 'changed file')} (${plural(pages, 'page')}), ` +
    `${formatBytes(bytes)}, LSN ${m.base_source_lsn} -> ${m.source_lsn} -> ${dest}`
  );
}

function buildProgram(): Command {
  const program = new Command('powdb-backup')
    .description('Backup, restore and point-in-time recovery for PowDB data directories')
    .exitOverride()
    .showHelpAfterError();

  program
    .command('backup')
    .description('back up a checkpointed data directory: full, or incremental on the chain given by --base')
    .argument('<dataDir>', 'PowDB data directory (the server must be stopped cleanly)')
    .argument('<dest>', 'new backup directory (must not exist or be empty)')
    .option(
      '--base <backupDir>',
      'full backup, then each increment in order, that this increment builds on (repeatable)',
      collect,
    )
    .option('--json', 'print the manifest as JSON instead of a summary')
    .addHelpText(
      'after',
      '\nExamples:\n  powdb-backup backup ./data ./backups/full\n  powdb-backup backup ./data ./backups/inc1 --base ./backups/full\n' +
        '  powdb-backup backup ./data ./backups/inc2 --base ./backups/full --base ./backups/inc1',
    )
    .action(async (dataDir: string, dest: string, opts: { base?: string[]; json?: boolean }) => {
      if (!opts.base) {
        const m = await fullBackup(dataDir, dest);
        print(Boolean(opts.json), { kind: 'full', dest, manifest: m }, fullSummary(m, dest));
      } else {
        const m = await incrementalBackup(dataDir, opts.base, dest);
        print(Boolean(opts.json), { kind: 'incremental', dest, manifest: m }, incrementSummary(m, dest));
      }
    });

  program
    .command('restore')
    .description('restore a full backup, then each --apply increment in order (a prefix of a chain = point in time)')
    .argument('<backupDir>', 'full backup directory')
    .argument('<dest>', 'directory to restore into (must not exist or be empty)')
    .option('--apply <incrementDir>', 'increment to apply after the full backup (repeatable, in order)', collect)
    .option('--json', 'print the result as JSON instead of a summary')
    .addHelpText(
      'after',
      '\nExamples:\n  powdb-backup restore ./backups/full ./restored --apply ./backups/inc1 --apply ./backups/inc2',
    )
    .action(async (backupDir: string, dest: string, opts: { apply?: string[]; json?: boolean }) => {
      const r = await restoreChain(backupDir, opts.apply ?? [], dest);
      const line =
        `restored ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, ` +
        `${plural(r.increments, 'increment')} applied, LSN ${r.sourceLsn} -> ${dest}`;
      print(Boolean(opts.json), r, line);
    });

  program
    .command('verify')
    .description('check a backup (and increments) without restoring: hashes, pages, deltas, catalog, chain')
    .argument('<backupDir>', 'full backup directory')
    .option('--apply <incrementDir>', 'increment of the chain to check too (repeatable, in order)', collect)
    .option('--json', 'print the report as JSON: { ok, checks, errors: [{ code, message, file, page? }] }')
    .addHelpText('after', '\nExamples:\n  powdb-backup verify ./backups/full --apply ./backups/inc1')
    .action(async (backupDir: string, opts: { apply?: string[]; json?: boolean }) => {
      const report = await verifyChain(backupDir, opts.apply ?? []);
      print(Boolean(opts.json), report, verifySummary(report));
      if (!report.ok) process.exitCode = 1;
    });

  return program;
}

function verifySummary(report: VerifyReport): string {
  const lines = [
    ...report.checks.map((c) => `ok    ${c}`),
    ...report.errors.map((e) => `FAIL  [${e.code}] ${e.message}`),
  ];
  const first = report.errors[0];
  const page = report.errors.find((e) => e.file === first?.file && e.page !== undefined)?.page;
  lines.push(
    first
      ? `verify found ${plural(report.errors.length, 'problem')}; first in ${first.file}${page === undefined ? '' : ` page ${page}`}`
      : `verified: no problems (${plural(report.checks.length, 'check')})`,
  );
  return lines.join('\n');
}

/** Runs the CLI; resolves to the exit code (0 ok, 1 failure, 2 usage error). */
export async function main(argv: string[]): Promise<number> {
  try {
    process.exitCode = 0;
    await buildProgram().parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? 0 : 2;
    }
    const e = toBackupError(err);
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
