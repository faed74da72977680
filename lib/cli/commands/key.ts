// `key list|add|remove`: an encrypted repository's passwords.
import type { Command } from 'commander';
import { common, repoAccess, openRepository, print, newPassword, type Common, type RepoOpts } from '../kit.js';
import { lockWaitOption } from '../lock-wait.js';

export function register(program: Command): void {
  const key = program.command('key').description("manage an encrypted repository's passwords");
  common(
    repoAccess(key.command('list').description('list the keys').requiredOption('--repo <repo>', 'the repository')),
  ).action(async (opts: Common & RepoOpts & { repo: string }) => {
    const keys = await (await openRepository(opts.repo, opts)).listKeys();
    print(Boolean(opts.json), { keys }, keys.map((k) => `${k.current ? '*' : ' '} ${k.id}  ${k.created}`).join('\n'));
  });
  common(
    repoAccess(
      key
        .command('add')
        .description('add a password (the data is not re-encrypted)')
        .requiredOption('--repo <repo>', 'the repository')
        .option('--new-password-file <file>', 'the new password (else POWDB_BACKUP_NEW_PASSWORD, else a prompt)'),
    ),
  ).action(async (opts: Common & RepoOpts & { repo: string; newPasswordFile?: string }) => {
    const repo = await openRepository(opts.repo, opts);
    const id = await repo.addKey(await newPassword(opts.newPasswordFile, 'POWDB_BACKUP_NEW_PASSWORD', 'new password'));
    print(Boolean(opts.json), { id }, `added key ${id}`);
  });
  common(
    repoAccess(
      key
        .command('remove')
        .description('remove a key (never the last one)')
        .requiredOption('--repo <repo>', 'the repository')
        .argument('<id>', 'the key id (see key list)')
        .addOption(
          lockWaitOption('by default key removal fails at once with ERR_REPO_LOCKED while backups or readers run'),
        ),
    ),
  ).action(async (id: string, opts: Common & RepoOpts & { repo: string; lockWait?: number }) => {
    await (await openRepository(opts.repo, opts)).removeKey(id, { lockWaitMs: opts.lockWait });
    print(Boolean(opts.json), { removed: id }, `removed key ${id}`);
  });
}
