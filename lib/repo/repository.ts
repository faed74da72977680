import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError } from '../common/errors.js';
import { parseJson } from '../common/json.js';
import { RepositoryBase } from './base.js';
import { LEGACY_MARKER, LegacyRepository } from './legacy.js';
import { repoNative, type StoreOptions } from '../native/repo.js';
import { PackedRepository, type InitOptions, type OpenOptions } from './packed.js';

export type {
  BackupRecord,
  BackupSource,
  BackupType,
  ExpireOptions,
  ExpireResult,
  RepositoryDump,
  RepositoryDumpOptions,
  RepositoryTotals,
  SourceSummary,
} from './base.js';
export type { InitOptions, OpenOptions } from './packed.js';
export type { StoreOptions } from '../native/repo.js';
export { LegacyRepository, PackedRepository };

/** A backup repository: format 2 (packs: deduplicated, compressed, optionally encrypted) or format 1. */
export type Repository = RepositoryBase;

async function legacyMarker(dir: string): Promise<{ format?: unknown } | null> {
  try {
    return parseJson(await readFile(join(dir, LEGACY_MARKER), 'utf8')) as { format?: unknown };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BackupError('ERR_NOT_A_REPO', `${dir} is not a powdb-backup repository (${(err as Error).message})`);
  }
}

export const Repository = {
  /**
   * Creates a repository in `dir` (absent or empty) or at `s3://bucket/prefix`
   * (packed formats only): packed (format 4, or 3 when asked) unless `format: 1`.
   */
  async init(dir: string, options: InitOptions & StoreOptions = {}): Promise<Repository> {
    const { remote } = repoNative.locate(dir);
    if (options.format === 1) {
      if (remote) throw new BackupError('ERR_INVALID_ARG', 'format 1 repositories are local directories');
      return LegacyRepository.init(dir);
    }
    return PackedRepository.init(dir, options);
  },

  /** Opens a repository of either format (object storage: format 2). */
  async open(dir: string, options: OpenOptions & StoreOptions = {}): Promise<Repository> {
    if (repoNative.locate(dir).remote) return PackedRepository.open(dir, options);
    if (!existsSync(dir)) {
      throw new BackupError(
        'ERR_NOT_A_REPO',
        `repository ${dir} does not exist: create it with powdb-backup init ${dir}`,
      );
    }
    const marker = await legacyMarker(dir);
    if (marker === null) return PackedRepository.open(dir, options);
    if (marker.format !== 1n) {
      throw new BackupError(
        'ERR_NOT_A_REPO',
        `${dir} is not a powdb-backup repository (unknown repository format ${String(marker.format)})`,
      );
    }
    return LegacyRepository.fromMarker(dir);
  },
};
