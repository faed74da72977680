import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fullBackup, incrementalBackup, type BackupOptions } from './backup.js';
import { crashPoint } from './crashpoint.js';
import { BackupError } from './errors.js';
import { formatJson, parseJson } from './json.js';
import { storedSize, type BackupManifest, type IncrementManifest } from './manifest.js';
import { native } from './native.js';
import type { OperationOptions } from './progress.js';
import { restoreChain, type RestoreResult } from './restore.js';
import { writeFileDurably } from './staging.js';
import { verifyChain, type VerifyOptions, type VerifyReport } from './verify.js';

/** Marks a directory as a backup repository. */
const MARKER = 'powdb-backup-repo.json';
const BACKUPS = 'backups';
/** Written into each backup directory beside its manifest; the reference ignores it. */
const RECORD = 'backup.json';
/** Prefix of backups being expired: renamed first, removed after, ignored by readers. */
const EXPIRING = '.expiring-';

/** `full`; `incr`: on the newest backup; `diff`: on the newest full backup. */
export type BackupType = 'full' | 'incr' | 'diff';

/** One backup of a repository, as its catalog lists it. */
export interface BackupRecord {
  id: string;
  type: BackupType;
  /** The backup this one builds on (null for a full backup). */
  parent: string | null;
  base_source_lsn: bigint | null;
  source_lsn: bigint;
  /** ISO 8601, UTC. */
  created: string;
  /** Bytes stored: whole files plus deltas. */
  bytes: bigint;
  files: number;
  pages: number;
}

const SUFFIX: Record<BackupType, string> = { full: 'F', incr: 'I', diff: 'D' };

/** A sortable id for a backup taken at `at`: 20261123T101500Z-F. */
function backupId(at: Date, type: BackupType): string {
  return `${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${SUFFIX[type]}`;
}

function recordOf(
  id: string,
  type: BackupType,
  parent: string | null,
  at: Date,
  m: BackupManifest | IncrementManifest,
): BackupRecord {
  const base_source_lsn = 'files' in m ? null : m.base_source_lsn;
  return { id, type, parent, base_source_lsn, source_lsn: m.source_lsn, created: at.toISOString(), ...storedSize(m) };
}

/** What `asOf` names: a backup id, an LSN, or a time. */
type Target = { id: string } | { lsn: bigint } | { time: number };

function parseTarget(asOf: string | bigint | Date, ids: Set<string>): Target {
  if (asOf instanceof Date) return { time: asOf.getTime() };
  if (typeof asOf === 'bigint') return { lsn: asOf };
  if (ids.has(asOf)) return { id: asOf };
  if (/^\d+$/.test(asOf)) return { lsn: BigInt(asOf) };
  const time = Date.parse(asOf);
  if (Number.isNaN(time)) {
    throw new BackupError('ERR_INVALID_ARG', `--as-of ${asOf} is neither a backup id, an LSN nor an ISO 8601 time`);
  }
  return { time };
}

/**
 * A directory of backups with a catalog: backups get time-sortable ids and
 * pick their base automatically; restores choose a point in time; expiry
 * keeps every retained chain whole. Each backup inside stays in the
 * reference formats, restorable with the plain commands.
 */
export class Repository {
  private constructor(readonly dir: string) {}

  /** Creates a repository in `dir` (absent or empty), private to its owner. */
  static async init(dir: string): Promise<Repository> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if ((await readdir(dir)).length > 0) {
      throw new BackupError('ERR_DEST_NOT_EMPTY', `repository directory ${dir} is not empty`);
    }
    await mkdir(join(dir, BACKUPS), { mode: 0o700 });
    await writeFileDurably(join(dir, MARKER), formatJson({ format: 1, kind: 'powdb-backup repository' }));
    return new Repository(resolve(dir));
  }

  /** Opens an existing repository. */
  static async open(dir: string): Promise<Repository> {
    try {
      const marker = parseJson(await readFile(join(dir, MARKER), 'utf8')) as { format?: bigint };
      if (marker.format !== 1n) throw new Error(`unknown repository format ${marker.format}`);
    } catch (err) {
      throw new BackupError('ERR_NOT_A_REPO', `${dir} is not a powdb-backup repository (${(err as Error).message})`);
    }
    return new Repository(resolve(dir));
  }

  private path(id: string): string {
    return join(this.dir, BACKUPS, id);
  }

  /** Every backup, oldest first. Backups being expired are not listed. */
  async list(): Promise<BackupRecord[]> {
    const names = (await readdir(join(this.dir, BACKUPS))).filter((n) => !n.startsWith('.')).sort();
    const records = await Promise.all(
      names.map(async (id) => {
        const raw = parseJson(await readFile(join(this.path(id), RECORD), 'utf8')) as Record<string, unknown>;
        return { ...raw, files: Number(raw.files), pages: Number(raw.pages) } as BackupRecord;
      }),
    );
    // Ids are sortable to the second; `created` orders backups taken within one.
    return records.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1));
  }

  /** The catalog, or (with `id`) one backup and its chain, full backup first. */
  async info(id?: string): Promise<{ backups: BackupRecord[]; chain?: BackupRecord[] }> {
    const backups = await this.list();
    return id === undefined ? { backups } : { backups, chain: this.chain(backups, this.pick(backups, id).id) };
  }

  /** A backup and its ancestors, full backup first. */
  chain(records: BackupRecord[], id: string): BackupRecord[] {
    const byId = new Map(records.map((r) => [r.id, r]));
    const chain: BackupRecord[] = [];
    for (let at = byId.get(id); at; at = at.parent ? byId.get(at.parent) : undefined) chain.unshift(at);
    if (chain[0]?.type !== 'full')
      throw new BackupError('ERR_CHAIN_BROKEN', `backup ${id} has no full backup at the root of its chain`);
    return chain;
  }

  /** Runs `work` holding the repository's writer lock (a second writer is refused; readers still work). */
  private async exclusively<T>(work: () => Promise<T>): Promise<T> {
    let lock: number;
    try {
      lock = await native.acquireLock(this.dir);
    } catch (err) {
      if ((err as BackupError).code !== 'ERR_LOCKED') throw err;
      throw new BackupError(
        'ERR_REPO_LOCKED',
        `repository ${this.dir} is in use by another backup or expire; try again when it ends`,
      );
    }
    try {
      return await work();
    } finally {
      await native.releaseLock(lock);
    }
  }

  /**
   * Backs `dataDir` up into the repository. `incr` builds on the newest
   * backup, `diff` on the newest full one; `full`, or no full backup yet,
   * takes a full backup.
   */
  async backup(dataDir: string, options: BackupOptions & { type?: BackupType } = {}): Promise<BackupRecord> {
    return this.exclusively(async () => {
      await this.removeExpiring();
      const records = await this.list();
      const fulls = records.filter((r) => r.type === 'full');
      const wanted = options.type ?? 'incr';
      const type: BackupType = fulls.length === 0 ? 'full' : wanted;
      const parent = type === 'full' ? undefined : type === 'diff' ? fulls.at(-1)! : records.at(-1)!;
      const at = new Date();
      let id = backupId(at, type);
      for (let n = 2; records.some((r) => r.id === id); n++) id = `${backupId(at, type)}-${n}`;
      const dest = this.path(id);
      const sidecar = (m: BackupManifest | IncrementManifest) => ({
        name: RECORD,
        text: formatJson(recordOf(id, type, parent?.id ?? null, at, m)),
      });
      if (!parent) await fullBackup(dataDir, dest, { ...options, sidecar });
      else {
        const base = this.chain(records, parent.id).map((r) => this.path(r.id));
        await incrementalBackup(dataDir, base, dest, { ...options, sidecar });
      }
      return (await this.list()).find((r) => r.id === id)!;
    });
  }

  /** The newest backup at or before `asOf` (default: the newest of all). */
  pick(records: BackupRecord[], asOf?: string | bigint | Date): BackupRecord {
    if (records.length === 0) throw new BackupError('ERR_NO_BACKUP', `repository ${this.dir} holds no backup`);
    if (asOf === undefined) return records.at(-1)!;
    const target = parseTarget(asOf, new Set(records.map((r) => r.id)));
    const fits = (r: BackupRecord) =>
      'id' in target
        ? r.id === target.id
        : 'lsn' in target
          ? r.source_lsn <= target.lsn
          : Date.parse(r.created) <= target.time;
    const found = records.filter(fits).at(-1);
    if (!found) {
      const first = records[0]!;
      throw new BackupError(
        'ERR_NO_BACKUP',
        `no backup at or before ${String(asOf)}: the first is ${first.id} (${first.created}, LSN ${first.source_lsn})`,
      );
    }
    return found;
  }

  /** Restores the chain of the newest backup at or before `asOf` into `dest`. */
  async restore(
    dest: string,
    options: OperationOptions & { asOf?: string | bigint | Date } = {},
  ): Promise<RestoreResult & { applied: string[] }> {
    const records = await this.list();
    const chain = this.chain(records, this.pick(records, options.asOf).id);
    const [full, ...increments] = chain.map((r) => this.path(r.id));
    const result = await restoreChain(full!, increments, dest, options);
    return { ...result, applied: chain.map((r) => r.id) };
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
   * Removes old backups: keeps the newest `retainFull` full backups with
   * everything built on them, and (with `retainDays`) every backup younger
   * than that with its ancestors. A backup a kept one depends on is never
   * removed. Each removal renames the backup away first (atomic), newest
   * first, so an interrupted expire leaves only whole chains visible.
   */
  async expire(options: {
    retainFull: number;
    retainDays?: number;
    dryRun?: boolean;
  }): Promise<{ removed: string[]; kept: string[] }> {
    if (!Number.isInteger(options.retainFull) || options.retainFull < 1) {
      throw new BackupError('ERR_INVALID_ARG', '--retain-full must be a whole number of at least 1');
    }
    const run = async () => {
      if (!options.dryRun) await this.removeExpiring();
      const records = await this.list();
      const kept = new Set<string>();
      const fulls = records
        .filter((r) => r.type === 'full')
        .slice(-options.retainFull)
        .map((r) => r.id);
      for (const r of records) {
        const chain = this.chain(records, r.id).map((c) => c.id);
        const young =
          options.retainDays !== undefined && Date.now() - Date.parse(r.created) <= options.retainDays * 86_400_000;
        if (fulls.includes(chain[0]!) || young) chain.forEach((id) => kept.add(id));
      }
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
