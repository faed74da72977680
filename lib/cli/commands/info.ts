// `info`: a repository's backups, totals, WAL archive and holds, or one backup and its chain.
import type { Command } from 'commander';
import { BackupError } from '../../common/errors.js';
import { common, repoAccess, openRepository, print, type Common, type RepoOpts } from '../kit.js';
import { recordLine, totalsLine, archiveLines, infoTable } from '../describe.js';
import type { ArchiveLineage } from '../../repo/archive.js';
import type { RepositoryHold } from '../../repo/holds.js';

export function register(program: Command): void {
  common(
    repoAccess(program.command('info'))
      .description("list a repository's backups and their chains, or one backup in detail")
      .requiredOption('--repo <repo>', 'the repository')
      .argument('[id]', 'a backup id: show it and its chain')
      .option('--source <key>', 'only the backups of this source (its key, as info lists it)')
      .addHelpText(
        'after',
        '\nExamples:\n  powdb-backup info --repo ./backups\n  powdb-backup info --repo ./backups 20261123T101500Z-I --json',
      ),
  ).action(async (id: string | undefined, opts: Common & RepoOpts & { repo: string; source?: string }) => {
    const info = await (await openRepository(opts.repo, opts)).info(id);
    const { chain, totals } = info;
    const sources = opts.source === undefined ? info.sources : info.sources.filter((s) => s.key === opts.source);
    if (opts.source !== undefined && sources.length === 0) {
      throw new BackupError(
        'ERR_NO_BACKUP',
        `repository ${opts.repo} holds no backup of source ${opts.source}; its sources: ${info.sources.map((s) => s.key).join(', ') || 'none'}`,
      );
    }
    const shown = new Set(sources.flatMap((s) => s.backups));
    const backups = info.backups.filter((r) => shown.has(r.id));
    const archive = 'archive' in info ? (info.archive as ArchiveLineage[]) : undefined;
    const holds = 'holds' in info ? (info.holds as RepositoryHold[]) : undefined;
    if (!chain) {
      const holdLines = (holds ?? []).map(
        (h) => `\nheld by ${h.operation} (${h.kind}) on host ${h.host}, pid ${h.pid}, lease until ${h.until}`,
      );
      return print(
        Boolean(opts.json),
        { repo: opts.repo, backups, sources, totals, ...(archive ? { archive } : {}), ...(holds ? { holds } : {}) },
        `${infoTable(backups, sources)}\n${totalsLine(totals)}${archive ? `\n${archiveLines(archive)}` : ''}${holdLines.join('')}`,
      );
    }
    print(
      Boolean(opts.json),
      { backup: chain.at(-1), chain: chain.map((r) => r.id) },
      `${recordLine(chain.at(-1)!)}\nchain: ${chain.map((r) => r.id).join(' -> ')}`,
    );
  });
}
