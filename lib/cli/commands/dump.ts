// `dump`: the rows of one table of a backup (or point in time) as JSON Lines or CSV, to stdout or a new file,
// written by the native core in bounded memory.
import type { Command } from 'commander';
import {
  collect,
  common,
  openRepository,
  operation,
  print,
  repoAccess,
  usage,
  type Common,
  type RepoOpts,
} from '../kit.js';
import { dumpSummary } from '../describe.js';

type DumpOpts = Common &
  RepoOpts & {
    apply?: string[];
    repo?: string;
    asOf?: string;
    source?: string;
    table: string;
    format: string;
    output?: string;
  };

/** What the shell reports for a writer killed by SIGPIPE: the reader of stdout went away (`dump ... | head`). */
const EXIT_BROKEN_PIPE = 141;

export function register(program: Command): void {
  common(
    repoAccess(program.command('dump'))
      .description('write the rows of one table of a backup or point in time, as JSON Lines or CSV')
      .argument('[backupDir]', 'full backup directory (without --repo)')
      .option('--apply <incrementDir>', 'increment of the chain (repeatable, in order)', collect)
      .option('--repo <repo>', 'dump from a backup of this repository')
      .option('--as-of <target>', 'with --repo: a time (ISO 8601), an LSN or a backup id; default the newest')
      .option(
        '--source <key>',
        'with --repo: the source (its key, as info lists it) to pick from; needed when the repository holds several',
      )
      .requiredOption('--table <table>', 'the table whose rows are written')
      .option('--format <format>', 'jsonl (one JSON object a row) or csv (RFC 4180, header row)', 'jsonl')
      .option('--output <file>', 'write a new file (appears whole when done) instead of stdout')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup dump --repo ./backups --as-of 2026-12-01T09:00:00Z --table Orders | grep 1042\n' +
          '  powdb-backup dump ./backups/full --apply ./backups/inc1 --table Orders --format csv --output orders.csv',
      ),
  ).action(async (backupDir: string | undefined, opts: DumpOpts) => {
    if (opts.format !== 'jsonl' && opts.format !== 'csv') usage(`--format is jsonl or csv, not ${opts.format}`);
    if (opts.json && !opts.output) usage('--json goes with --output (without it, the rows are on stdout)');
    const options = {
      table: opts.table,
      format: opts.format as 'jsonl' | 'csv',
      ...(opts.output ? { output: opts.output } : {}),
      // No bar over rows written to the terminal.
      ...(await operation(opts.output || !process.stdout.isTTY ? opts : { ...opts, quiet: true })),
    };
    try {
      if (opts.repo) {
        if (backupDir || opts.apply) usage('with --repo give no <backupDir> and no --apply');
        const repo = await openRepository(opts.repo, opts);
        const r = await repo.dump({ ...options, asOf: opts.asOf, source: opts.source });
        if (opts.output) print(Boolean(opts.json), r, dumpSummary(r, `backup ${r.backup}, LSN ${r.lsn}`));
        return;
      }
      if (!backupDir) usage('missing <backupDir> (or --repo <repo>)');
      if (opts.asOf) usage('--as-of goes with --repo');
      if (opts.source !== undefined) usage('--source goes with --repo');
      const { chainDump } = await import('../../restore/restore.js');
      const r = await chainDump(backupDir, opts.apply ?? [], options);
      if (opts.output) print(Boolean(opts.json), r, dumpSummary(r, `LSN ${r.lsn}`));
    } catch (err) {
      if (!opts.output && (err as { code?: string }).code === 'EPIPE') {
        process.exitCode = EXIT_BROKEN_PIPE;
        return;
      }
      throw err;
    }
  });
}
