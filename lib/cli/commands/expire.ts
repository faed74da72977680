// `expire`: retention, then the prune of what no kept backup uses.
import type { Command } from 'commander';
import { formatBytes, plural } from '../bytes.js';
import { common, repoAccess, openRepository, print, interrupted, type Common, type RepoOpts } from '../kit.js';
import { lockWaitOption } from '../lock-wait.js';

export function register(program: Command): void {
  common(
    repoAccess(program.command('expire'))
      .description('remove old backups, never one that a retained backup depends on')
      .requiredOption('--repo <repo>', 'the repository')
      .requiredOption(
        '--retain-full <n>',
        'keep the newest N full backups of each source and everything built on them',
        (v) => Number(v),
      )
      .option('--retain-days <days>', 'also keep every backup younger than this, with its chain', (v) => Number(v))
      .option('--source <key>', 'expire the backups of this source only (its key, as info lists it)')
      .option('--dry-run', 'list what would be removed, remove nothing')
      .addOption(lockWaitOption('by default expire fails at once with ERR_REPO_LOCKED while backups or readers run'))
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup expire --repo ./backups --retain-full 2 --dry-run\n  powdb-backup expire --repo ./backups --retain-full 1 --retain-days 7',
      ),
  ).action(
    async (
      opts: Common &
        RepoOpts & {
          repo: string;
          retainFull: number;
          retainDays?: number;
          source?: string;
          dryRun?: boolean;
          lockWait?: number;
        },
    ) => {
      const r = await (
        await openRepository(opts.repo, opts)
      ).expire({ ...opts, lockWaitMs: opts.lockWait, signal: interrupted.signal });
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
    },
  );
}
