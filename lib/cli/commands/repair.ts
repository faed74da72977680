// `repair`: rebuild damaged indexes and drop damaged chunks after verify reports damage.
import type { Command } from 'commander';
import { common, repoAccess, openRepository, print, operation, type Common, type RepoOpts } from '../kit.js';
import { repairSummary } from '../describe.js';
import { lockWaitOption } from '../lock-wait.js';

export function register(program: Command): void {
  common(
    repoAccess(
      program
        .command('repair')
        .description(
          'after verify reports damage: rebuild damaged index objects from the packs, drop damaged and missing chunks from the index (the intact chunks of a damaged pack are kept in new packs), and name the backups that need chunks that are gone; then run a backup to store them again',
        )
        .requiredOption('--repo <repo>', 'the repository')
        .addOption(lockWaitOption('by default repair fails at once with ERR_REPO_LOCKED while backups or readers run')),
    ),
  ).action(async (opts: Common & RepoOpts & { repo: string; lockWait?: number }) => {
    const { signal } = await operation(opts);
    const r = await (await openRepository(opts.repo, opts)).repair({ signal, lockWaitMs: opts.lockWait });
    print(Boolean(opts.json), r, repairSummary(r));
  });
}
