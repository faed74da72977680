// `archive`: a sync-enabled directory's retained WAL segments into the
// repository, once, or with --every until stopped (continuous archiving of a
// live server, run by systemd or a container).
import type { Command } from 'commander';
import { Option } from 'commander';
import type { ArchiveResult } from '../../repo/archive.js';
import type { ArchiveEveryResult, ArchiveRound } from '../../repo/archive-round.js';
import type { Repository } from '../../repo/repository.js';
import type { ServerLogin } from '../../online/server.js';
import { formatBytes, plural } from '../bytes.js';
import {
  common,
  interrupted,
  repoAccess,
  openRepository,
  print,
  printLine,
  usage,
  operation,
  type Common,
  type RepoOpts,
} from '../kit.js';
import { loginFlags, parseMillis, serverLogin, type ServerOpts } from '../server-login.js';
import { lockWaitOption } from '../lock-wait.js';

type ArchiveOpts = Common & RepoOpts & ServerOpts & { repo: string; lockWait?: number; every?: number };

export function register(program: Command): void {
  common(
    repoAccess(
      loginFlags(
        program
          .command('archive')
          .description(
            "copy a sync-enabled data directory's retained WAL segments that the repository lacks, once or, with --every, until stopped (safe beside a running server and beside backups)",
          )
          .argument(
            '<dataDir>',
            'the sync-enabled PowDB data directory (only its .powdb-sync/retained/ segments are read)',
          )
          .requiredOption('--repo <repo>', 'the repository (format 2)')
          .addOption(
            new Option(
              '--every <duration>',
              'run until stopped (SIGTERM or Ctrl-C), archiving at this interval, e.g. 30s or 5m',
            ).argParser(parseMillis),
          )
          .addOption(lockWaitOption('default 60s (archive runs and backups go on side by side)')),
        'the powdb-server serving <dataDir>: asked to archive its WAL first (each round with --every), so nothing older than that is missing',
      ),
    ).addHelpText(
      'after',
      '\nExamples:\n' +
        '  powdb-backup archive /var/lib/powdb --repo ./backups\n' +
        '  powdb-backup archive /var/lib/powdb --repo s3://bucket/powdb --every 30s --server 127.0.0.1:5433 --server-user backup\n' +
        '  * * * * * powdb-backup archive /var/lib/powdb --repo s3://bucket/powdb --quiet   (crontab)',
    ),
  ).action(async (dataDir: string, opts: ArchiveOpts) => {
    if (opts.every !== undefined && opts.every < 1000) usage('--every is at least 1s');
    const login = await serverLogin(opts);
    const server = login && { host: login.host, port: login.port, user: login.user, password: login.password };
    const repo = await openRepository(opts.repo, opts);
    const lockWaitMs = opts.lockWait;
    if (opts.every !== undefined) return archiveEvery(repo, dataDir, opts, { everyMs: opts.every, server, lockWaitMs });
    const r = await repo.archive(dataDir, { ...(await operation(opts)), server, lockWaitMs });
    print(Boolean(opts.json), r, describeArchive(r));
    if (r.new_gap) process.exitCode = 1; // a hole in history, new with this run
  });
}

/** The loop: one line a round that did something (every round with --json), a summary when stopped. */
async function archiveEvery(
  repo: Repository,
  dataDir: string,
  opts: ArchiveOpts,
  how: { everyMs: number; server?: ServerLogin; lockWaitMs?: number },
): Promise<void> {
  // A service manager stops the loop with SIGTERM: the round under way ends cleanly, then the summary.
  const stop = () => {
    interrupted.abort();
    setTimeout(() => process.exit(143), 5000).unref(); // never hang on the way out
  };
  process.on('SIGTERM', stop);
  try {
    const total = await repo.archiveEvery(dataDir, {
      ...how,
      signal: interrupted.signal,
      onRound: (round) => {
        if (opts.json) printLine({ round });
        else if (round.error || (round.archived.length > 0 && !opts.quiet))
          process.stderr.write(`${describeRound(round)}\n`);
      },
    });
    if (opts.json) printLine({ stopped: total });
    else process.stdout.write(`${describeTotal(total)}\n`);
  } finally {
    process.off('SIGTERM', stop);
  }
}

const range = (x: { start_lsn: bigint; end_lsn: bigint }) => `${x.start_lsn}-${x.end_lsn}`;

function describeArchive(r: ArchiveResult): string {
  const stored = r.archived.reduce((sum, a) => sum + a.bytes, 0n);
  return (
    (r.archived.length
      ? `archived ${plural(r.archived.length, 'segment')} (LSNs ${r.archived.map(range).join(', ')}, ${formatBytes(stored)})`
      : 'nothing new to archive') +
    `; the archive holds LSNs ${r.ranges.map(range).join(', ') || 'none'}` +
    r.gaps
      .map((g) => `\nGAP: no archived LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}; nothing can be restored inside it`)
      .join('')
  );
}

function describeRound(r: ArchiveRound): string {
  const at = `${r.asked_at} round ${r.round}`;
  if (r.error) return `${at}: failed [${r.error.code}] ${r.error.message} (retrying at the next round)`;
  const behind = r.behind_lsn ? `; ${r.behind_lsn} LSNs of the server not archived yet (a transaction open)` : '';
  return `${at}: archived ${plural(r.archived.length, 'segment')} (LSNs ${r.archived.map(range).join(', ')}), through LSN ${r.archived_through}${behind}`;
}

function describeTotal(t: ArchiveEveryResult): string {
  const last = t.last?.archived_through === undefined ? '' : `; archived through LSN ${t.last.archived_through}`;
  const failed = t.failed_rounds ? ` (${t.failed_rounds} failed)` : '';
  return `stopped after ${plural(t.rounds, 'round')}${failed}: archived ${plural(t.segments, 'segment')}, ${formatBytes(t.bytes)}${last}`;
}
