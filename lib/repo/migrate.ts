import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BackupError } from '../common/errors.js';
import type { OperationOptions } from '../common/progress.js';
import { LegacyRepository, PackedRepository, Repository, type InitOptions } from './repository.js';

/**
 * Converts a format-1 repository into a new format-2 one at `to`: every
 * backup, oldest first, restored from its chain into a scratch directory
 * beside `to` and stored with its id, type, parent and time. The source is
 * only read.
 */
export async function migrate(
  from: string,
  to: string,
  options: InitOptions & OperationOptions & { fromPassword?: string } = {},
): Promise<{ migrated: string[]; repository: PackedRepository }> {
  const old = await Repository.open(from, { password: options.fromPassword });
  if (!(old instanceof LegacyRepository)) {
    throw new BackupError('ERR_INVALID_ARG', `${from} is already a format-${old.format} repository`);
  }
  const repo = await PackedRepository.init(to, options);
  const migrated: string[] = [];
  for (const record of await old.list()) {
    const scratch = await mkdtemp(join(dirname(resolve(to)), '.powdb-migrate-'));
    try {
      const data = join(scratch, 'data');
      await old.restore(data, { ...options, asOf: record.id });
      await repo.backup(data, { ...options, as: record });
      migrated.push(record.id);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  return { migrated, repository: repo };
}
