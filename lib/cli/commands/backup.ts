// `backup`: a data directory into a repository, or into a new backup directory (full, or an increment on --base).
import { Option, type Command } from 'commander';
import {
  common,
  repoAccess,
  openRepository,
  print,
  usage,
  operation,
  collect,
  type Common,
  type RepoOpts,
} from '../kit.js';
import { fullSummary, incrementSummary, onlineLine, recordLine } from '../describe.js';
import { serverFlags, serverLogin, type ServerOpts } from '../server-login.js';
import type { OnlineReport } from '../../online/live-copy.js';
import type { BackupType } from '../../repo/repository.js';
import { lockWaitOption } from '../lock-wait.js';

export function register(program: Command): void {
  common(
    serverFlags(repoAccess(program.command('backup')))
      .description(
        'back up a data directory (stopped, or served by a live server with --server): into a repository, or to <dest> (full, or incremental on --base)',
      )
      .argument('<dataDir>', 'PowDB data directory (stopped cleanly, or served by the --server given)')
      .argument('[dest]', 'new backup directory (must not exist or be empty); not with --repo')
      .option(
        '--base <backupDir>',
        'full backup, then each increment in order, that this increment builds on (repeatable)',
        collect,
      )
      .option('--repo <repo>', 'store the backup in this repository, which picks its base')
      .option(
        '--source <name>',
        'with --repo: the name of the source (database) this backup continues, wherever the data directory is; default its sync database id, else host and path',
      )
      .option(
        '--same-database',
        'with --repo: back up although the path, host or LSN differ from the newest backup of its source (the database moved, or was restored and written to)',
      )
      .addOption(lockWaitOption('with --repo, by default a backup that meets one fails at once with ERR_REPO_LOCKED'))
      .addOption(
        new Option(
          '--type <type>',
          'with --repo: full, incr (on the newest backup) or diff (on the newest full)',
        ).choices(['full', 'incr', 'diff']),
      )
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup backup ./data --repo ./backups --type full\n  powdb-backup backup ./data --repo ./backups\n' +
          '  powdb-backup backup /srv/shop --repo ./fleet --source shop\n' +
          '  powdb-backup backup ./data ./backups/full\n  powdb-backup backup ./data ./backups/inc1 --base ./backups/full\n' +
          '  POWDB_SERVER_PASSWORD=... powdb-backup backup /var/lib/powdb --repo ./backups --server 127.0.0.1:5433 --server-user backup',
      ),
  ).action(
    async (
      dataDir: string,
      dest: string | undefined,
      opts: Common &
        RepoOpts &
        ServerOpts & {
          base?: string[];
          repo?: string;
          type?: BackupType;
          source?: string;
          sameDatabase?: boolean;
          lockWait?: number;
        },
    ) => {
      const server = await serverLogin(opts);
      let online: OnlineReport | undefined;
      const run = { ...(await operation(opts)), server, onOnline: (r: OnlineReport) => (online = r) };
      const withOnline = (line: string) => (online ? `${line}\n${onlineLine(online)}` : line);
      if (opts.repo) {
        if (dest || opts.base) usage('--repo picks the destination and the base: give neither <dest> nor --base');
        const record = await (
          await openRepository(opts.repo, opts)
        ).backup(dataDir, {
          ...run,
          type: opts.type ?? 'incr',
          ...(opts.source !== undefined ? { source: opts.source } : {}),
          sameDatabase: Boolean(opts.sameDatabase),
          ...(opts.lockWait !== undefined ? { lockWaitMs: opts.lockWait } : {}),
        });
        return print(
          Boolean(opts.json),
          { ...record, ...(online && { online }) },
          withOnline(`backup ${recordLine(record)}`),
        );
      }
      if (!dest) usage('missing <dest> (or --repo)');
      if (opts.type) usage('--type goes with --repo');
      if (opts.sameDatabase) usage('--same-database goes with --repo');
      if (opts.source !== undefined) usage('--source goes with --repo');
      if (opts.lockWait !== undefined) usage('--lock-wait goes with --repo');
      if (!opts.base) {
        const { fullBackup } = await import('../../chain/backup.js');
        const m = await fullBackup(dataDir, dest, run);
        return print(Boolean(opts.json), { kind: 'full', dest, manifest: m, online }, withOnline(fullSummary(m, dest)));
      }
      const { incrementalBackup } = await import('../../chain/backup.js');
      const m = await incrementalBackup(dataDir, opts.base, dest, run);
      print(
        Boolean(opts.json),
        { kind: 'incremental', dest, manifest: m, online },
        withOnline(incrementSummary(m, dest)),
      );
    },
  );
}
