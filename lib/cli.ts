#!/usr/bin/env node
// The `powdb-backup` command: the upstream CLI surface over the public API.
// Start-up matters (a cron job, a script): only commander and small modules
// load up front; each command imports what it needs when it runs.
import { Command, CommanderError, Option } from 'commander';
import { formatBytes, plural } from './format.js';
import { packageVersion } from './version.js';
import type { BackupManifest, IncrementManifest } from './manifest.js';
import type { OperationOptions, ProgressEvent } from './progress.js';
import { openRepository, repoAccess, repositoryCommands } from './cli-repo.js';
import type { BackupRecord, BackupType, RepositoryTotals } from './repository.js';
import type { SyncMode, SyncOutcome } from './sync.js';
import type { ArchiveLineage } from './repo/archive.js';
import type { RepositoryHold } from './repo/holds.js';
import type { DeltaSummary } from './inplace.js';
import type { VerifyReport } from './verify.js';

/** The restore modes of a sync-enabled backup (lib/sync.ts SYNC_MODES, not loaded up front). */
const SYNC_MODES: SyncMode[] = ['strip', 'preserve', 'fork'];

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** JSON output (lossless u64s) is loaded only when --json asks for it. */
let formatJson: ((value: unknown) => string) | undefined;
async function loadJson(argv: string[]): Promise<void> {
  if (argv.includes('--json')) formatJson = (await import('./json.js')).formatJson;
}

/**
 * JSON keys are snake_case in every command, as in manifests and the catalog
 * (`source_lsn`); the camelCase keys some commands printed before 0.1.1
 * (`sourceLsn`) stay beside them as aliases for one release.
 */
function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const converted = snakeKeys(v);
    out[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = converted;
    out[key] = converted;
  }
  return out;
}

function print(json: boolean, value: unknown, line: string): void {
  process.stdout.write(json ? `${formatJson!(snakeKeys(value))}\n` : `${line}\n`);
}

/** What a delta restore compared, rewrote and removed. */
function deltaNote(d: DeltaSummary | undefined): string {
  if (!d) return '';
  return (
    `\nin place: compared ${plural(d.filesCompared, 'file')} (${d.pagesCompared} heap pages), ` +
    `rewrote ${plural(d.filesRewritten, 'file')} (${d.pagesRewritten} pages, ${formatBytes(d.bytesWritten)} written), ` +
    `removed ${plural(d.filesRemoved, 'file')}`
  );
}

/** What a restore did with the sync identity, for its summary line. */
function syncNote(sync: SyncOutcome | undefined): string {
  if (!sync) return '';
  if (sync.mode === 'strip') return ', sync identity stripped';
  return `, sync identity ${sync.mode === 'preserve' ? 'preserved' : 'forked'} (${sync.identity!.database_id})`;
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
    else [bytes, pages] = [bytes + c.Pages.delta_len, pages + c.Pages.page_indices.length];
  }
  return (
    `incremental backup: ${plural(m.changed.length, 'changed file')} (${plural(pages, 'page')}), ` +
    `${formatBytes(bytes)}, LSN ${m.base_source_lsn} -> ${m.source_lsn} -> ${dest}`
  );
}

interface Common {
  json?: boolean;
  quiet?: boolean;
  /** Repository commands: where the password is. */
  passwordFile?: string;
}

/** A progress bar on stderr for a terminal; nothing with --json, --quiet or off a TTY. */
async function progressFor(opts: Common): Promise<OperationOptions['onProgress']> {
  if (opts.json || opts.quiet || !process.stderr.isTTY) return undefined;
  progressBarModule = await import('./progress-bar.js');
  return progressBarModule.progressBar();
}

// Ctrl-C aborts the running operation cleanly (nothing half-written is left).
const interrupted = new AbortController();

/** Options for every long operation: a progress bar and the Ctrl-C signal. */
async function operation(opts: Common): Promise<OperationOptions> {
  return { onProgress: await progressFor(opts), signal: interrupted.signal };
}

function usage(message: string): never {
  throw new CommanderError(2, 'powdb-backup.usage', `error: ${message} (see 'powdb-backup <command> --help')`);
}

function recordLine(r: BackupRecord): string {
  const on = r.parent ? ` on ${r.parent}` : '';
  const from = r.source
    ? `, from ${r.source.host}:${r.source.path}${r.source.database_id ? ` (database ${r.source.database_id})` : ''}`
    : '';
  return `${r.id} (${r.type}${on}): ${plural(r.files, 'file')}, ${formatBytes(r.logical_bytes)} of data, ${formatBytes(r.stored_bytes)} stored, ${plural(r.pages, 'page')}, LSN ${r.source_lsn}${from}`;
}

function totalsLine(t: RepositoryTotals): string {
  const ratio = t.stored_bytes > 0n ? ` (${(Number(t.logical_bytes) / Number(t.stored_bytes)).toFixed(1)}x)` : '';
  return (
    `format ${t.format}, compression ${t.compression}, encryption ${t.encryption}: ` +
    `${plural(t.backups, 'backup')}, ${formatBytes(t.logical_bytes)} of data in ${formatBytes(t.stored_bytes)} stored${ratio}` +
    (t.conditional_writes === false
      ? '\nthe store ignores conditional writes: each write is checked first; unique names and the writer lock protect the repository'
      : t.conditional_writes === null
        ? '\nwhether the store honours conditional writes is unknown: these credentials cannot write'
        : '')
  );
}

/** The WAL archive of each lineage: its LSN ranges, gaps and times. */
function archiveLines(lineages: ArchiveLineage[]): string {
  return lineages
    .map(
      (l) =>
        `WAL archive of database ${l.database_id} generation ${l.primary_generation}: ${plural(l.segments, 'segment')}, ${formatBytes(l.bytes)}, ` +
        l.ranges
          .map((r) => `LSNs ${r.start_lsn}-${r.end_lsn} (archived ${r.first_archived} to ${r.last_archived})`)
          .join(', ') +
        (l.newest_boundary === null ? '' : `; restorable up to LSN ${l.newest_boundary}`) +
        l.gaps.map((g) => `\n  GAP: no archived LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}`).join(''),
    )
    .join('\n');
}

function infoTable(records: BackupRecord[]): string {
  if (records.length === 0) return 'no backups yet';
  const rows = [['id', 'type', 'parent', 'LSN', 'created', 'logical', 'added', 'holds', 'files', 'pages', 'source']];
  for (const r of records) {
    rows.push([
      r.id,
      r.type,
      r.parent ?? '-',
      String(r.source_lsn),
      r.created,
      formatBytes(r.logical_bytes),
      formatBytes(r.stored_bytes),
      r.held_bytes === undefined ? '-' : formatBytes(r.held_bytes),
      String(r.files),
      String(r.pages),
      r.source ? `${r.source.host}:${r.source.path}` : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function buildProgram(): Command {
  const program = new Command('powdb-backup')
    .description('Backup, restore and point-in-time recovery for PowDB data directories')
    // Handled in main() before parsing: the native addon loads only to answer it.
    .option('-V, --version', 'print the package and native addon versions')
    .exitOverride()
    .showHelpAfterError("(see 'powdb-backup <command> --help')");
  const common = (cmd: Command) =>
    cmd.option('--json', 'print one JSON document on stdout (LSNs exact)').option('--quiet', 'no progress bar');

  repositoryCommands(program, { common, print, usage, operation });

  common(
    repoAccess(program.command('backup'))
      .description(
        'back up a checkpointed data directory: into a repository, or to <dest> (full, or incremental on --base)',
      )
      .argument('<dataDir>', 'PowDB data directory (the server must be stopped cleanly)')
      .argument('[dest]', 'new backup directory (must not exist or be empty); not with --repo')
      .option(
        '--base <backupDir>',
        'full backup, then each increment in order, that this increment builds on (repeatable)',
        collect,
      )
      .option('--repo <repo>', 'store the backup in this repository, which picks its base')
      .option(
        '--same-database',
        'with --repo: back up although the path, host or LSN differ from the newest backup (the database moved, or was restored and written to)',
      )
      .addOption(
        new Option(
          '--type <type>',
          'with --repo: full, incr (on the newest backup) or diff (on the newest full)',
        ).choices(['full', 'incr', 'diff']),
      )
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup backup ./data --repo ./backups --type full\n  powdb-backup backup ./data --repo ./backups\n' +
          '  powdb-backup backup ./data ./backups/full\n  powdb-backup backup ./data ./backups/inc1 --base ./backups/full',
      ),
  ).action(
    async (
      dataDir: string,
      dest: string | undefined,
      opts: Common & { base?: string[]; repo?: string; type?: BackupType; sameDatabase?: boolean },
    ) => {
      const run = await operation(opts);
      if (opts.repo) {
        if (dest || opts.base) usage('--repo picks the destination and the base: give neither <dest> nor --base');
        const record = await (
          await openRepository(opts.repo, opts)
        ).backup(dataDir, { ...run, type: opts.type ?? 'incr', sameDatabase: Boolean(opts.sameDatabase) });
        return print(Boolean(opts.json), record, `backup ${recordLine(record)}`);
      }
      if (!dest) usage('missing <dest> (or --repo)');
      if (opts.type) usage('--type goes with --repo');
      if (opts.sameDatabase) usage('--same-database goes with --repo');
      if (!opts.base) {
        const { fullBackup } = await import('./backup.js');
        const m = await fullBackup(dataDir, dest, run);
        return print(Boolean(opts.json), { kind: 'full', dest, manifest: m }, fullSummary(m, dest));
      }
      const { incrementalBackup } = await import('./backup.js');
      const m = await incrementalBackup(dataDir, opts.base, dest, run);
      print(Boolean(opts.json), { kind: 'incremental', dest, manifest: m }, incrementSummary(m, dest));
    },
  );

  common(
    repoAccess(program.command('restore'))
      .description('restore a full backup and --apply increments in order, or a repository --as-of a moment')
      .argument('[backupDir]', 'full backup directory (without --repo)')
      .argument('[dest]', 'directory to restore into (must not exist or be empty)')
      .option('--apply <incrementDir>', 'increment to apply after the full backup (repeatable, in order)', collect)
      .option('--repo <repo>', 'restore from this repository; the one argument is then <dest>')
      .option('--as-of <target>', 'with --repo: a time (ISO 8601), an LSN or a backup id; default the newest')
      .addOption(
        new Option(
          '--sync-mode <mode>',
          'for a backup of a sync-enabled directory: strip its sync identity, preserve it (disaster recovery of the same lineage) or fork a new one',
        ).choices(SYNC_MODES),
      )
      .option(
        '--delta',
        'restore into an existing data directory of the same database, rewriting only the files and pages that differ',
      )
      .option('--force', 'with --delta: also into a directory that is not a PowDB data directory')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup restore --repo ./backups ./restored --as-of 2026-11-23T10:00:00Z\n' +
          '  powdb-backup restore --repo ./backups ./restored --as-of 41200\n' +
          '  powdb-backup restore ./backups/full ./restored --apply ./backups/inc1 --apply ./backups/inc2',
      ),
  ).action(
    async (
      first: string | undefined,
      second: string | undefined,
      opts: Common & {
        apply?: string[];
        repo?: string;
        asOf?: string;
        syncMode?: SyncMode;
        delta?: boolean;
        force?: boolean;
      },
    ) => {
      if (opts.force && !opts.delta) usage('--force goes with --delta');
      const run = {
        ...(await operation(opts)),
        ...(opts.syncMode ? { syncMode: opts.syncMode } : {}),
        ...(opts.delta ? { delta: true, force: Boolean(opts.force) } : {}),
      };
      if (opts.repo) {
        if (!first || second || opts.apply) usage('with --repo give only <dest> (and --as-of)');
        const r = await (await openRepository(opts.repo, opts)).restore(first, { ...run, asOf: opts.asOf });
        const replay = r.replay
          ? `, then the archived WAL to LSN ${r.replay.cut_lsn} (LSNs ${r.replay.base_lsn + 1n}-${r.replay.cut_lsn}: ${plural(Number(r.replay.units), 'record')} from ${plural(r.replay.segments, 'segment')}, for target ${r.replay.target_lsn}; the first open of the directory replays them)`
          : '';
        const notes = [...(r.replay?.notes ?? []), ...(r.target?.note ? [r.target.note] : [])]
          .map((n) => `\nnote: ${n}`)
          .join('');
        const target = r.target
          ? `target ${r.target.asked}${r.target.time ? ` = ${r.target.time} (UTC)` : ''}: backup ${r.target.backup} (taken ${r.target.backup_created}, LSN ${r.target.backup_lsn}), LSN reached ${r.target.lsn}\n`
          : '';
        const line = `${target}restored ${r.applied.at(-1)} (applied ${r.applied.join(', ')}): ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, LSN ${r.replay?.base_lsn ?? r.sourceLsn}${replay}${syncNote(r.sync)} -> ${first}${deltaNote(r.delta)}${notes}`;
        return print(Boolean(opts.json), r, line);
      }
      if (!first || !second) usage('missing <backupDir> <dest> (or --repo <repo> <dest>)');
      if (opts.asOf) usage('--as-of goes with --repo');
      const { restoreChain } = await import('./restore.js');
      const r = await restoreChain(first, opts.apply ?? [], second, run);
      const line = `restored ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, ${plural(r.increments, 'increment')} applied, LSN ${r.sourceLsn}${syncNote(r.sync)} -> ${second}${deltaNote(r.delta)}`;
      print(Boolean(opts.json), r, line);
    },
  );

  common(
    repoAccess(program.command('verify'))
      .description('check backups without restoring: hashes, pages, deltas, catalog, chain')
      .argument('[backupDir]', 'full backup directory (without --repo)')
      .option('--apply <incrementDir>', 'increment of the chain to check too (repeatable, in order)', collect)
      .option('--repo <repo>', 'verify the chains of this repository')
      .option('--id <id>', 'with --repo: only the chain of this backup')
      .option('--source <dataDir>', 'also compare with this stopped data directory, file by file and page by page')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup verify ./backups/full --apply ./backups/inc1\n  powdb-backup verify --repo ./backups\n  powdb-backup verify --repo ./backups --source /var/lib/powdb',
      ),
  ).action(
    async (
      backupDir: string | undefined,
      opts: Common & { apply?: string[]; repo?: string; id?: string; source?: string },
    ) => {
      let reports: { id?: string; report: VerifyReport }[];
      let format: 1 | 2 = 2;
      const options = { ...(await operation(opts)), ...(opts.source === undefined ? {} : { source: opts.source }) };
      if (opts.repo) {
        if (backupDir || opts.apply) usage('with --repo give no <backupDir> or --apply');
        const repo = await openRepository(opts.repo, opts);
        format = repo.format;
        reports = await repo.verify({ ...options, id: opts.id });
      } else {
        if (!backupDir) usage('missing <backupDir> (or --repo)');
        const { verifyChain } = await import('./verify.js');
        reports = [{ report: await verifyChain(backupDir, opts.apply ?? [], options) }];
      }
      const verdict = opts.repo ? repositoryVerdict(reports, opts.repo, format) : undefined;
      const json = verdict ? { ok: reports.every((r) => r.report.ok), verdict, chains: reports } : reports[0]!.report;
      print(
        Boolean(opts.json),
        json,
        reports
          .map(
            (r) =>
              (r.id
                ? `${r.id === 'repository' ? 'repository' : r.id === 'archive' ? 'WAL archive' : `backup ${r.id}`}:\n`
                : '') + verifySummary(r.report),
          )
          .join('\n') + (verdict ? `\n${verdict.line}` : ''),
      );
      if (reports.some((r) => !r.report.ok)) process.exitCode = 1;
    },
  );

  common(
    repoAccess(program.command('info'))
      .description("list a repository's backups and their chains, or one backup in detail")
      .requiredOption('--repo <repo>', 'the repository')
      .argument('[id]', 'a backup id: show it and its chain')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup info --repo ./backups\n  powdb-backup info --repo ./backups 20261123T101500Z-I --json',
      ),
  ).action(async (id: string | undefined, opts: Common & { repo: string }) => {
    const info = await (await openRepository(opts.repo, opts)).info(id);
    const { backups, chain, totals } = info;
    const archive = 'archive' in info ? (info.archive as ArchiveLineage[]) : undefined;
    const holds = 'holds' in info ? (info.holds as RepositoryHold[]) : undefined;
    if (!chain) {
      const holdLines = (holds ?? []).map(
        (h) => `\nheld by ${h.operation} (${h.kind}) on host ${h.host}, pid ${h.pid}, lease until ${h.until}`,
      );
      return print(
        Boolean(opts.json),
        { repo: opts.repo, backups, totals, ...(archive ? { archive } : {}), ...(holds ? { holds } : {}) },
        `${infoTable(backups)}\n${totalsLine(totals)}${archive ? `\n${archiveLines(archive)}` : ''}${holdLines.join('')}`,
      );
    }
    print(
      Boolean(opts.json),
      { backup: chain.at(-1), chain: chain.map((r) => r.id) },
      `${recordLine(chain.at(-1)!)}\nchain: ${chain.map((r) => r.id).join(' -> ')}`,
    );
  });

  common(
    repoAccess(program.command('expire'))
      .description('remove old backups, never one that a retained backup depends on')
      .requiredOption('--repo <repo>', 'the repository')
      .requiredOption('--retain-full <n>', 'keep the newest N full backups and everything built on them', (v) =>
        Number(v),
      )
      .option('--retain-days <days>', 'also keep every backup younger than this, with its chain', (v) => Number(v))
      .option('--dry-run', 'list what would be removed, remove nothing')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup expire --repo ./backups --retain-full 2 --dry-run\n  powdb-backup expire --repo ./backups --retain-full 1 --retain-days 7',
      ),
  ).action(async (opts: Common & { repo: string; retainFull: number; retainDays?: number; dryRun?: boolean }) => {
    const r = await (await openRepository(opts.repo, opts)).expire({ ...opts, signal: interrupted.signal });
    const verb = opts.dryRun ? 'would remove' : 'removed';
    print(
      Boolean(opts.json),
      r,
      `${verb} ${plural(r.removed.length, 'backup')}${r.removed.length ? `: ${r.removed.join(', ')}` : ''}; kept ${r.kept.length}` +
        (r.pruned
          ? `; ${opts.dryRun ? 'would prune' : 'pruned'} ${plural(r.pruned.blobsRemoved, 'chunk')}, ${plural(r.pruned.packsRemoved, 'pack')} removed ` +
            `(${r.pruned.packsRepacked} repacked), ${formatBytes(r.pruned.bytesFreed > 0n ? r.pruned.bytesFreed : 0n)} ${opts.dryRun ? 'would be freed' : 'freed'}`
          : ''),
    );
  });

  return program;
}

/** One verdict over a repository's verify: how many backups restore, which do not, what to do next. */
function repositoryVerdict(reports: { id?: string; report: VerifyReport }[], repo: string, format: 1 | 2) {
  const backups = reports.filter((r) => r.id !== 'repository' && r.id !== 'archive');
  const damaged = backups.filter((r) => !r.report.ok).map((r) => r.id!);
  const store = reports.find((r) => r.id === 'repository')?.report.ok !== false;
  const archive = reports.find((r) => r.id === 'archive')?.report.ok !== false;
  const restorable = backups.length - damaged.length;
  const next =
    damaged.length > 0 || !store
      ? format === 1
        ? 'next: restore another backup, and take a new full backup (--type full); a format-1 repository cannot be repaired (migrate converts it)'
        : `next: powdb-backup repair --repo ${repo}, then a new backup, then verify again (README: When something goes wrong)`
      : !archive
        ? 'next: the WAL archive has problems (see above): restores that replay past them fail; run archive again from the database'
        : undefined;
  const line =
    `verdict: ${restorable} of ${plural(backups.length, 'backup')} restorable` +
    (damaged.length ? `; damaged: ${damaged.join(', ')}` : '') +
    (!store && damaged.length === 0 ? '; the repository has damage no backup needs' : '') +
    (next ? `; ${next}` : '');
  return { restorable, backups: backups.length, damaged, ...(next ? { next } : {}), line };
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

/** Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C). */
const EXIT_INTERRUPTED = 130;
/** How long a Ctrl-C waits for the operation to wind down cleanly before the process ends anyway. */
const ABORT_GRACE_MS = 5000;

/** Codes of a command line asking for something impossible: exit 2, like commander's own. */
const USAGE_CODES = new Set(['ERR_USAGE', 'ERR_INVALID_ARG']);

function fail(json: boolean, code: string, message: string): void {
  progressBarModule?.stopProgressBar();
  process.stderr.write(`error [${code}]: ${message}\n`);
  if (json) print(true, { error: { code, message } }, '');
}

/** Loaded with the first bar, so that every exit can stop it. */
let progressBarModule: typeof import('./progress-bar.js') | undefined;

/** Runs the CLI; resolves to the exit code (0 ok, 1 failure, 2 usage error, 130 interrupted). */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    process.exitCode = 0;
    if (argv.length === 1 && (argv[0] === '-V' || argv[0] === '--version')) {
      const { nativeVersion } = await import('./native.js');
      process.stdout.write(`powdb-backup ${packageVersion()} (native addon ${nativeVersion()})\n`);
      return 0;
    }
    await loadJson(argv);
    await buildProgram().parseAsync(argv, { from: 'user' });
    progressBarModule?.stopProgressBar();
    return Number(process.exitCode ?? 0);
  } catch (err) {
    // With --json, scripts read the failure from stdout too: { "error": { "code", "message" } }.
    if (err instanceof CommanderError) {
      progressBarModule?.stopProgressBar();
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      if (err.code === 'powdb-backup.usage') process.stderr.write(`${err.message}\n`);
      if (json) print(true, { error: { code: 'ERR_USAGE', message: err.message.replace(/^error: /, '') } }, '');
      return 2;
    }
    const { toBackupError } = await import('./errors.js');
    const e = toBackupError(err);
    if (e.code === 'ERR_ABORTED' && interrupted.signal.aborted) {
      fail(json, e.code, 'interrupted (Ctrl-C): stopped cleanly, nothing half-done was left');
      return EXIT_INTERRUPTED;
    }
    if (!USAGE_CODES.has(e.code)) {
      fail(json, e.code, e.message);
      return 1;
    }
    fail(json, e.code, `${e.message} (see 'powdb-backup <command> --help')`);
    return 2;
  }
}

/** Ends the process now: a second Ctrl-C, or an operation that did not stop within the grace time. */
function exitInterrupted(): never {
  fail(argv().includes('--json'), 'ERR_ABORTED', 'interrupted (Ctrl-C)');
  process.exit(EXIT_INTERRUPTED);
}
const argv = () => process.argv.slice(2);

// One Ctrl-C aborts the running operation (it stops at its next chunk and leaves nothing
// half-done, as after a crash); if it has not ended within the grace time, or on a
// second Ctrl-C, the process ends at once: a crash is safe too, a hang is not.
process.on('SIGINT', () => {
  if (interrupted.signal.aborted) exitInterrupted();
  interrupted.abort();
  setTimeout(exitInterrupted, ABORT_GRACE_MS).unref();
});
// Warnings (a hold that could not be written, an unreadable backup) are one line, not Node's format.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (progressBarModule) progressBarModule.writeOverBar(`warning: ${w.message}\n`);
  else process.stderr.write(`warning: ${w.message}\n`);
});
const code = await main(argv());
process.exitCode = code;
// Nothing of ours stays open after main; if a library's handle did, the process would hang.
setTimeout(() => process.exit(code), 1000).unref();
