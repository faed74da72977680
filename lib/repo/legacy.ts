import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fullBackup, incrementalBackup } from '../chain/backup.js';
import { CONTENTS_FILE } from '../chain/contents.js';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import { formatJson, parseJson } from '../common/json.js';
import { storedSize, type BackupManifest, type IncrementManifest } from '../chain/manifest.js';
import { native } from '../native/core.js';
import { chainDump, chainTables, restoreChain } from '../restore/restore.js';
import { writeFileDurably } from '../common/staging.js';
import { verifyChain, type VerifyOptions, type VerifyReport } from '../chain/verify.js';
import {
  RepositoryBase,
  newBackupId,
  nextBackup,
  sortRecords,
  type BackupRecord,
  type BackupType,
  type ExpireOptions,
  type ExpireResult,
  type RepositoryTotals,
  type RestoreAsOf,
  type RepositoryBackupOptions,
  type RepositoryRestoreResult,
  type RepositoryTables,
  type RepositoryDump,
  type RepositoryDumpOptions,
  type TablesOptions,
  resolvedTarget,
} from './base.js';
import { assertSameSource, currentSource, sourceKey } from './source.js';
import { LEGACY_SOURCE } from './sources.js';
import { readSyncIdentity } from '../source/sync.js';

/** Marks a directory as a format-1 repository. */
export const LEGACY_MARKER = 'powdb-backup-repo.json';
const BACKUPS = 'backups';
/** Written into each backup directory beside its manifest; the reference ignores it. */
const RECORD = 'backup.json';
/** Prefix of backups being expired: renamed first, removed after, ignored by readers. */
const EXPIRING = '.expiring-';

function recordOf(
  id: string,
  type: BackupType,
  parent: string | null,
  at: Date,
  m: BackupManifest | IncrementManifest,
): Omit<BackupRecord, 'logical_bytes' | 'stored_bytes'> {
  const base_source_lsn = 'files' in m ? null : m.base_source_lsn;
  return { id, type, parent, base_source_lsn, source_lsn: m.source_lsn, created: at.toISOString(), ...storedSize(m) };
}

/**
 * Format 1 (before 0.2): a directory of backups, each in the reference
 * formats with a catalog record beside its manifest, chained by increments.
 * Still read and written; `migrate` converts it to format 2.
 */
export class LegacyRepository extends RepositoryBase {
  readonly format = 1 as const;

  private constructor(readonly dir: string) {
    super();
  }

  /** Creates a format-1 repository in `dir` (absent or empty), private to its owner. */
  static async init(dir: string): Promise<LegacyRepository> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if ((await readdir(dir)).length > 0) {
      throw new BackupError('ERR_DEST_NOT_EMPTY', `repository directory ${dir} is not empty`);
    }
    await mkdir(join(dir, BACKUPS), { mode: 0o700 });
    await writeFileDurably(join(dir, LEGACY_MARKER), formatJson({ format: 1, kind: 'powdb-backup repository' }));
    return new LegacyRepository(resolve(dir));
  }

  /** Opens a format-1 repository whose marker was read. */
  static fromMarker(dir: string): LegacyRepository {
    return new LegacyRepository(resolve(dir));
  }

  /** Where a backup's directory is (it stays restorable with the plain commands). */
  path(id: string): string {
    return join(this.dir, BACKUPS, id);
  }

  /** The bytes of the database's files at a backup's moment (from its contents.json). */
  private async logicalBytes(id: string, fallback: bigint): Promise<bigint> {
    try {
      const text = await readFile(join(this.path(id), CONTENTS_FILE), 'utf8');
      const files = (parseJson(text) as { files: { len: bigint }[] }).files;
      return files.reduce((sum, f) => sum + f.len, 0n);
    } catch {
      return fallback;
    }
  }

  async list(): Promise<BackupRecord[]> {
    const names = (await readdir(join(this.dir, BACKUPS))).filter((n) => !n.startsWith('.')).sort();
    const records = await Promise.all(
      names.map(async (id) => {
        const raw = parseJson(await readFile(join(this.path(id), RECORD), 'utf8')) as Record<string, unknown>;
        const bytes = raw.bytes as bigint;
        return {
          ...raw,
          files: Number(raw.files),
          pages: Number(raw.pages),
          logical_bytes: await this.logicalBytes(id, bytes),
          stored_bytes: bytes,
        } as BackupRecord;
      }),
    );
    return sortRecords(records);
  }

  async totals(records?: BackupRecord[]): Promise<RepositoryTotals> {
    const all = records ?? (await this.list());
    let stored = 0n;
    for (const r of all) {
      for (const name of await readdir(this.path(r.id)))
        stored += BigInt((await stat(join(this.path(r.id), name))).size);
    }
    return {
      format: 1,
      compression: 'none',
      encryption: 'none',
      backups: all.length,
      logical_bytes: all.reduce((s, r) => s + r.logical_bytes, 0n),
      stored_bytes: stored,
    };
  }

  /** Runs `work` holding the repository's writer lock (a second writer is refused; readers still work). */
  private async exclusively<T>(work: () => Promise<T>): Promise<T> {
    return withRepoLock(this.dir, work);
  }

  /**
   * Format 1 backs up one database: every backup is of one source (keyed as
   * its newest backup's), whatever the backups record.
   */
  override sources(records: BackupRecord[]): Map<string, BackupRecord[]> {
    const newest = records.filter((r) => r.source).at(-1)?.source;
    return records.length === 0 ? new Map() : new Map([[newest ? sourceKey(newest) : LEGACY_SOURCE, records]]);
  }

  async backup(dataDir: string, options: RepositoryBackupOptions = {}): Promise<BackupRecord> {
    return this.exclusively(async () => {
      await this.removeExpiring();
      const records = await this.list();
      const origin = await currentSource(dataDir, (await readSyncIdentity(dataDir))?.database_id, options.source);
      assertSameSource(records, origin, undefined, options.sameDatabase);
      const { type, parent } = nextBackup(records, options.type);
      const at = new Date();
      const id = newBackupId(records, at, type);
      const dest = this.path(id);
      // Written just before the manifest: a refusal here publishes nothing.
      const sidecar = (m: BackupManifest | IncrementManifest) => {
        assertSameSource(records, origin, m.source_lsn, options.sameDatabase);
        return { name: RECORD, text: formatJson({ ...recordOf(id, type, parent?.id ?? null, at, m), source: origin }) };
      };
      if (!parent) await fullBackup(dataDir, dest, { ...options, sidecar });
      else {
        const base = this.chain(records, parent.id).map((r) => this.path(r.id));
        await incrementalBackup(dataDir, base, dest, { ...options, sidecar });
      }
      return (await this.list()).find((r) => r.id === id)!;
    });
  }

  async restore(dest: string, options: RestoreAsOf = {}): Promise<RepositoryRestoreResult> {
    const records = await this.list();
    const picked = this.pick(records, options.asOf, options.source);
    const chain = this.chain(records, picked.id);
    const [full, ...increments] = chain.map((r) => this.path(r.id));
    const result = await restoreChain(full!, increments, dest, options);
    const ids = new Set(records.map((r) => r.id));
    const target = resolvedTarget(options.asOf, picked, result.sourceLsn, false, ids);
    return { ...result, applied: chain.map((r) => r.id), ...(target ? { target } : {}) };
  }

  async tables(options: TablesOptions = {}): Promise<RepositoryTables> {
    const records = await this.list();
    const picked = this.pick(records, options.asOf, options.source);
    const [full, ...increments] = this.chain(records, picked.id).map((r) => this.path(r.id));
    return { ...(await chainTables(full!, increments, options)), backup: picked.id };
  }

  async dump(options: RepositoryDumpOptions): Promise<RepositoryDump> {
    const records = await this.list();
    const picked = this.pick(records, options.asOf);
    const [full, ...increments] = this.chain(records, picked.id).map((r) => this.path(r.id));
    return { ...(await chainDump(full!, increments, options)), backup: picked.id };
  }

  /**
   * Verifies the chain of one backup, or of every backup that no other builds
   * on; with `source`, compares the chain of `id` (default: the newest
   * backup) with that stopped data directory.
   */
  async verify(options: VerifyOptions & { id?: string } = {}): Promise<{ id: string; report: VerifyReport }[]> {
    const records = await this.list();
    const parents = new Set(records.map((r) => r.parent));
    const newest = options.source !== undefined && records.length > 0 ? [this.pick(records).id] : undefined;
    const tips = options.id ? [options.id] : (newest ?? records.filter((r) => !parents.has(r.id)).map((r) => r.id));
    const reports = [];
    for (const id of tips) {
      const [full, ...increments] = this.chain(records, id).map((r) => this.path(r.id));
      reports.push({ id, report: await verifyChain(full!, increments, options) });
    }
    return reports;
  }

  /**
   * Removes the backups outside the retention. A backup a kept one depends on
   * is never removed. Each removal renames the backup away first (atomic),
   * newest first, so an interrupted expire leaves only whole chains visible.
   */
  async expire(options: ExpireOptions): Promise<ExpireResult> {
    const run = async () => {
      if (!options.dryRun) await this.removeExpiring();
      const records = await this.list();
      const kept = this.retained(records, options);
      const removed = records.filter((r) => !kept.has(r.id)).map((r) => r.id);
      if (!options.dryRun) {
        for (const id of [...removed].reverse()) {
          const doomed = join(this.dir, BACKUPS, `${EXPIRING}${id}`);
          await rename(this.path(id), doomed);
          crashPoint('expire-renamed');
          await rm(doomed, { recursive: true, force: true });
        }
      }
      return { removed, kept: records.filter((r) => kept.has(r.id)).map((r) => r.id) };
    };
    return options.dryRun ? run() : this.exclusively(run);
  }

  /** Finishes removals that an interrupted expire left behind. */
  private async removeExpiring(): Promise<void> {
    for (const name of await readdir(join(this.dir, BACKUPS))) {
      if (name.startsWith(EXPIRING)) await rm(join(this.dir, BACKUPS, name), { recursive: true, force: true });
    }
  }
}

/** Runs `work` holding the writer lock of the repository in `dir`; a second writer gets ERR_REPO_LOCKED. */
export async function withRepoLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  let lock: number;
  try {
    lock = await native.acquireLock(dir);
  } catch (err) {
    if ((err as BackupError).code !== 'ERR_LOCKED') throw err;
    const holder = /process (\d+)/.exec((err as Error).message)?.[1];
    throw new BackupError(
      'ERR_REPO_LOCKED',
      `repository ${dir} is in use by another backup, expire or repair${holder ? ` (process ${holder} on this machine)` : ''}; try again when it ends`,
    );
  }
  try {
    return await work();
  } finally {
    await native.releaseLock(lock);
  }
}
