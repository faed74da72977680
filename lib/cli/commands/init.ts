// `init`: a new repository (format 2 by default), locally or on an object store.
import type { Command } from 'commander';
import { common, print, usage, initOptions, initWith, repositories, type InitOpts } from '../kit.js';

export function register(program: Command): void {
  common(
    initOptions(
      program
        .command('init')
        .description('create a backup repository (format 2: deduplicated, compressed, optionally encrypted)')
        .argument('<repo>', 'new repository: a directory (absent or empty) or s3://<bucket>/<prefix>')
        .option('--format <n>', 'repository format: 2 (default) or 1 (one reference-format directory per backup)', '2'),
    ).addHelpText(
      'after',
      '\nExamples:\n  powdb-backup init ./backups\n  powdb-backup init ./backups --encrypt --compression zstd:3\n  powdb-backup init s3://my-bucket/powdb --endpoint http://127.0.0.1:8333 --encrypt',
    ),
  ).action(async (repo: string, opts: InitOpts) => {
    if (opts.format !== '1' && opts.format !== '2') usage('--format is 1 or 2');
    const format = opts.format === '1' ? 1 : 2;
    if (format === 1 && (opts.encrypt || opts.compression !== 'zstd'))
      usage('format 1 has no compression or encryption');
    const { Repository, PackedRepository } = await repositories();
    const r = await Repository.init(repo, format === 1 ? { format } : await initWith(opts));
    const how =
      r instanceof PackedRepository ? `, compression ${opts.compression}${r.encrypted ? ', encrypted' : ''}` : '';
    print(Boolean(opts.json), { repo, format }, `initialized repository ${repo} (format ${format}${how})`);
  });
}
