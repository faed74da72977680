// `init`: a new repository (packed, format 4, by default), locally or on an object store.
import type { Command } from 'commander';
import { common, print, usage, initOptions, initWith, repositories, type InitOpts } from '../kit.js';

export function register(program: Command): void {
  common(
    initOptions(
      program
        .command('init')
        .description('create a backup repository (deduplicated, compressed, optionally encrypted)')
        .argument('<repo>', 'new repository: a directory (absent or empty) or s3://<bucket>/<prefix>')
        .option(
          '--format <n>',
          'repository format: 4 (default: packed, heap pages as row deltas), 3 (packed, readable by powdb-backup before row deltas; 2 is taken as 3) or 1 (one reference-format directory per backup)',
          '4',
        ),
    ).addHelpText(
      'after',
      '\nExamples:\n  powdb-backup init ./backups\n  powdb-backup init ./backups --encrypt --compression zstd:3\n  powdb-backup init s3://my-bucket/powdb --endpoint http://127.0.0.1:8333 --encrypt',
    ),
  ).action(async (repo: string, opts: InitOpts) => {
    const given = opts.format ?? '4';
    if (!['1', '2', '3', '4'].includes(given)) usage('--format is 4 or 3 (packed), or 1');
    const format = given === '1' ? 1 : given === '4' ? 4 : 3;
    if (format === 1 && (opts.encrypt || opts.compression !== 'zstd'))
      usage('format 1 has no compression or encryption');
    const { Repository, PackedRepository } = await repositories();
    const r = await Repository.init(repo, format === 1 ? { format } : { ...(await initWith(opts)), format });
    const how =
      r instanceof PackedRepository ? `, compression ${opts.compression}${r.encrypted ? ', encrypted' : ''}` : '';
    const made = r instanceof PackedRepository ? r.format : 1;
    print(Boolean(opts.json), { repo, format: made }, `initialized repository ${repo} (format ${made}${how})`);
  });
}
