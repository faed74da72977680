// `migrate`: a format-1 repository into a new format-2 one.
import type { Command } from 'commander';
import { plural } from '../bytes.js';
import { common, print, operation, initOptions, initWith, type InitOpts } from '../kit.js';

export function register(program: Command): void {
  common(
    initOptions(
      program
        .command('migrate')
        .description('convert a format-1 repository into a new format-2 repository (the old one is only read)')
        .argument('<from>', 'the format-1 repository')
        .argument('<to>', 'the new repository directory (must not exist or be empty)'),
    ),
  ).action(async (from: string, to: string, opts: InitOpts) => {
    const { migrate } = await import('../../repo/migrate.js');
    const r = await migrate(from, to, { ...(await operation(opts)), ...(await initWith(opts)) });
    r.repository.close();
    print(
      Boolean(opts.json),
      { from, to, migrated: r.migrated },
      `migrated ${plural(r.migrated.length, 'backup')} from ${from} to ${to}`,
    );
  });
}
