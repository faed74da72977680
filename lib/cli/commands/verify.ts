// `verify`: backups checked without restoring them; with --source, compared with a data directory.
import type { Command } from 'commander';
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
import { repositoryVerdict, verifySummary } from '../describe.js';
import type { VerifyReport } from '../../chain/verify.js';

export function register(program: Command): void {
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
      opts: Common & RepoOpts & { apply?: string[]; repo?: string; id?: string; source?: string },
    ) => {
      let reports: { id?: string; report: VerifyReport }[];
      let format: 1 | 2 | 3 | 4 = 4;
      const options = { ...(await operation(opts)), ...(opts.source === undefined ? {} : { source: opts.source }) };
      if (opts.repo) {
        if (backupDir || opts.apply) usage('with --repo give no <backupDir> or --apply');
        const repo = await openRepository(opts.repo, opts);
        format = repo.format;
        reports = await repo.verify({ ...options, id: opts.id });
      } else {
        if (!backupDir) usage('missing <backupDir> (or --repo)');
        const { verifyChain } = await import('../../chain/verify.js');
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
}
