// `archive`: a sync-enabled directory's retained WAL segments into the repository.
import type { Command } from 'commander';
import { formatBytes, plural } from '../bytes.js';
import { common, repoAccess, openRepository, print, usage, operation, type Common, type RepoOpts } from '../kit.js';

export function register(program: Command): void {
  common(
    repoAccess(
      program
        .command('archive')
        .description(
          "copy a sync-enabled data directory's retained WAL segments that the repository lacks (safe from cron, beside a running server and beside backups)",
        )
        .argument(
          '<dataDir>',
          'the sync-enabled PowDB data directory (only its .powdb-sync/retained/ segments are read)',
        )
        .requiredOption('--repo <repo>', 'the repository (format 2)')
        .option('--lock-wait <seconds>', 'wait this long for another writer of the repository (default 60)', (v) =>
          Number(v),
        ),
    ).addHelpText(
      'after',
      '\nExamples:\n  powdb-backup archive /var/lib/powdb --repo ./backups\n  * * * * * powdb-backup archive /var/lib/powdb --repo s3://bucket/powdb --quiet   (crontab)',
    ),
  ).action(async (dataDir: string, opts: Common & RepoOpts & { repo: string; lockWait?: number }) => {
    if (opts.lockWait !== undefined && !(opts.lockWait >= 0)) usage('--lock-wait is a number of seconds');
    const repo = await openRepository(opts.repo, opts);
    const r = await repo.archive(dataDir, {
      ...(await operation(opts)),
      ...(opts.lockWait === undefined ? {} : { lockWaitMs: opts.lockWait * 1000 }),
    });
    const stored = r.archived.reduce((sum, a) => sum + a.bytes, 0n);
    const range = (x: { start_lsn: bigint; end_lsn: bigint }) => `${x.start_lsn}-${x.end_lsn}`;
    const line =
      (r.archived.length
        ? `archived ${plural(r.archived.length, 'segment')} (LSNs ${r.archived.map(range).join(', ')}, ${formatBytes(stored)})`
        : 'nothing new to archive') +
      `; the archive holds LSNs ${r.ranges.map(range).join(', ') || 'none'}` +
      r.gaps
        .map((g) => `\nGAP: no archived LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}; nothing can be restored inside it`)
        .join('');
    print(Boolean(opts.json), r, line);
    if (r.new_gap) process.exitCode = 1; // a hole in history, new with this run
  });
}
