// `restore`: a repository backup (or point in time), or a directory chain, into a new or (--delta) existing directory.
import { Option, type Command } from 'commander';
import { formatBytes, plural } from '../bytes.js';
import {
  common,
  repoAccess,
  openRepository,
  print,
  usage,
  operation,
  collect,
  SYNC_MODES,
  type Common,
  type RepoOpts,
} from '../kit.js';
import { deltaNote, syncNote, tablesNote } from '../describe.js';
import type { SyncMode } from '../../source/sync.js';

export function register(program: Command): void {
  common(
    repoAccess(program.command('restore'))
      .description('restore a full backup and --apply increments in order, or a repository --as-of a moment')
      .argument('[backupDir]', 'full backup directory (without --repo)')
      .argument('[dest]', 'directory to restore into (must not exist or be empty)')
      .option('--apply <incrementDir>', 'increment to apply after the full backup (repeatable, in order)', collect)
      .option('--repo <repo>', 'restore from this repository; the one argument is then <dest>')
      .option('--as-of <target>', 'with --repo: a time (ISO 8601), an LSN or a backup id; default the newest')
      .option(
        '--source <key>',
        'with --repo: the source (its key, as info lists it) to pick from; needed when the repository holds several',
      )
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
      .option(
        '--table <table>',
        'restore only this table (repeatable), with the catalog and the small files; the engine opens and verifies the result',
        collect,
      )
      .option('--rename <table=new>', 'with --table: restore that table under a new name (repeatable)', collect)
      .option(
        '--into <dataDir>',
        'with --table: merge the tables into this existing data directory (stopped, its WAL checkpointed) instead of a new one; no <dest> then',
      )
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup restore --repo ./backups ./restored --as-of 2026-11-23T10:00:00Z\n' +
          '  powdb-backup restore --repo ./backups ./restored --as-of 41200\n' +
          '  powdb-backup restore ./backups/full ./restored --apply ./backups/inc1 --apply ./backups/inc2\n' +
          '  powdb-backup restore --repo ./backups ./one-table --table Orders --rename Orders=OrdersOld --as-of 41200\n' +
          '  powdb-backup restore --repo ./backups --into ./data --table Orders --rename Orders=OrdersOld --as-of 41200',
      ),
  ).action(
    async (
      first: string | undefined,
      second: string | undefined,
      opts: Common &
        RepoOpts & {
          apply?: string[];
          repo?: string;
          asOf?: string;
          source?: string;
          syncMode?: SyncMode;
          delta?: boolean;
          force?: boolean;
          table?: string[];
          rename?: string[];
          into?: string;
        },
    ) => {
      if (opts.force && !opts.delta) usage('--force goes with --delta');
      if (opts.into) {
        if (!opts.table) usage('--into goes with --table');
        if (opts.delta) usage('--into merges tables; it cannot go with --delta');
        // The target takes the place of <dest>.
        if (opts.repo ? first : second) usage('with --into give no <dest>: the tables go into the --into directory');
        if (opts.repo) first = opts.into;
        else second = opts.into;
      }
      const run = {
        ...(await operation(opts)),
        ...tableOptions(opts.table, opts.rename),
        ...(opts.into ? { into: true } : {}),
        ...(opts.syncMode ? { syncMode: opts.syncMode } : {}),
        ...(opts.delta ? { delta: true, force: Boolean(opts.force) } : {}),
      };
      if (opts.repo) {
        if (!first || second || opts.apply) usage('with --repo give only <dest> (and --as-of)');
        const r = await (
          await openRepository(opts.repo, opts)
        ).restore(first, {
          ...run,
          asOf: opts.asOf,
          source: opts.source,
        });
        const replay = r.replay
          ? `, then the archived WAL to LSN ${r.replay.cut_lsn} (LSNs ${r.replay.base_lsn + 1n}-${r.replay.cut_lsn}: ${plural(Number(r.replay.units), 'record')} from ${plural(r.replay.segments, 'segment')}, for target ${r.replay.target_lsn}; the first open of the directory replays them)`
          : '';
        const notes = [...(r.replay?.notes ?? []), ...(r.target?.note ? [r.target.note] : [])]
          .map((n) => `\nnote: ${n}`)
          .join('');
        const target = r.target
          ? `target ${r.target.asked}${r.target.time ? ` = ${r.target.time} (UTC)` : ''}: backup ${r.target.backup} (taken ${r.target.backup_created}, LSN ${r.target.backup_lsn}), LSN reached ${r.target.lsn}\n`
          : '';
        const line = `${target}restored ${r.applied.at(-1)} (applied ${r.applied.join(', ')}): ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, LSN ${r.replay?.base_lsn ?? r.sourceLsn}${replay}${syncNote(r.sync)} -> ${first}${deltaNote(r.delta)}${tablesNote(r.tables)}${notes}`;
        return print(Boolean(opts.json), r, line);
      }
      if (!first || !second) usage('missing <backupDir> <dest> (or --repo <repo> <dest>)');
      if (opts.asOf) usage('--as-of goes with --repo');
      if (opts.source !== undefined) usage('--source goes with --repo');
      const { restoreChain } = await import('../../restore/restore.js');
      const r = await restoreChain(first, opts.apply ?? [], second, run);
      const line = `restored ${plural(r.files, 'file')}, ${formatBytes(r.bytes)}, ${plural(r.increments, 'increment')} applied, LSN ${r.sourceLsn}${syncNote(r.sync)} -> ${second}${deltaNote(r.delta)}${tablesNote(r.tables)}`;
      print(Boolean(opts.json), r, line);
    },
  );
}

/** `--table` and `--rename T=U` as API options. */
function tableOptions(tables: string[] | undefined, renames: string[] | undefined) {
  if (!tables) {
    if (renames) usage('--rename goes with --table');
    return {};
  }
  const rename = new Map<string, string>();
  for (const r of renames ?? []) {
    const [from, to, extra] = r.split('=');
    if (!from || !to || extra !== undefined) usage(`--rename ${r}: give <table>=<new name>`);
    if (rename.has(from)) usage(`--rename ${from} is given twice`);
    rename.set(from, to);
  }
  return { tables, ...(renames ? { rename: Object.fromEntries(rename) } : {}) };
}
