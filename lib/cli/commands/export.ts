// `export`: one repository backup as a plain reference-format full backup.
import type { Command } from 'commander';
import { formatBytes, plural } from '../bytes.js';
import { common, repoAccess, openRepository, print, operation, type Common, type RepoOpts } from '../kit.js';

export function register(program: Command): void {
  common(
    repoAccess(
      program
        .command('export')
        .description('write one backup of a repository as a plain reference-format full backup')
        .requiredOption('--repo <repo>', 'the repository')
        .argument('<dest>', 'new backup directory (must not exist or be empty)')
        .option('--as-of <target>', 'a time (ISO 8601), an LSN or a backup id; default the newest')
        .option(
          '--source <key>',
          'the source (its key, as info lists it) to pick from; needed when the repository holds several',
        ),
    ).addHelpText(
      'after',
      '\nExample:\n  powdb-backup export --repo ./backups ./full-for-reference --as-of 2026-11-23T10:00:00Z',
    ),
  ).action(async (dest: string, opts: Common & RepoOpts & { repo: string; asOf?: string; source?: string }) => {
    const repo = await openRepository(opts.repo, opts);
    const r = await repo.export(dest, { ...(await operation(opts)), asOf: opts.asOf, source: opts.source });
    const bytes = r.manifest.files.reduce((s, f) => s + f.len, 0n);
    print(
      Boolean(opts.json),
      { id: r.id, dest, manifest: r.manifest },
      `exported ${r.id}: ${plural(r.manifest.files.length, 'file')}, ${formatBytes(bytes)}, source LSN ${r.manifest.source_lsn} -> ${dest}`,
    );
  });
}
