// `tables`: the tables of a backup (or point in time) with their columns, indexes, links and views, read from its
// catalog alone; sizes from the backup's own records; row counts with --rows.
import type { Command } from 'commander';
import { collect, common, openRepository, print, repoAccess, usage, type Common, type RepoOpts } from '../kit.js';
import { tablesListing } from '../describe.js';

export function register(program: Command): void {
  common(
    repoAccess(program.command('tables'))
      .description('list the tables of a backup or point in time: columns, indexes, links, views, sizes')
      .argument('[backupDir]', 'full backup directory (without --repo)')
      .option('--apply <incrementDir>', 'increment of the chain (repeatable, in order)', collect)
      .option('--repo <repo>', 'list a backup of this repository')
      .option('--as-of <target>', 'with --repo: a time (ISO 8601), an LSN or a backup id; default the newest')
      .option(
        '--source <key>',
        'with --repo: the source (its key, as info lists it) to pick from; needed when the repository holds several',
      )
      .option('--table <table>', 'only this table (repeatable)', collect)
      .option('--rows', 'also count rows with the engine (restores the tables into a scratch directory first)')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup tables --repo ./backups --as-of 20261123T101500Z-I\n' +
          '  powdb-backup tables ./backups/full --apply ./backups/inc1 --table Orders --rows --json',
      ),
  ).action(
    async (
      backupDir: string | undefined,
      opts: Common &
        RepoOpts & {
          apply?: string[];
          repo?: string;
          asOf?: string;
          source?: string;
          table?: string[];
          rows?: boolean;
        },
    ) => {
      const options = { ...(opts.table ? { tables: opts.table } : {}), ...(opts.rows ? { rows: true } : {}) };
      if (opts.repo) {
        if (backupDir || opts.apply) usage('with --repo give no <backupDir> and no --apply');
        const repo = await openRepository(opts.repo, opts);
        const r = await repo.tables({ ...options, asOf: opts.asOf, source: opts.source });
        return print(Boolean(opts.json), r, tablesListing(r, `backup ${r.backup}, LSN ${r.lsn}`));
      }
      if (!backupDir) usage('missing <backupDir> (or --repo <repo>)');
      if (opts.asOf) usage('--as-of goes with --repo');
      if (opts.source !== undefined) usage('--source goes with --repo');
      const { chainTables } = await import('../../restore/restore.js');
      const r = await chainTables(backupDir, opts.apply ?? [], options);
      print(Boolean(opts.json), r, tablesListing(r, `LSN ${r.lsn}`));
    },
  );
}
