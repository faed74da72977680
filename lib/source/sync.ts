import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as v from 'valibot';
import { BackupError } from '../common/errors.js';
import { formatJson, parseJsonAs } from '../common/json.js';
import { native } from '../native/core.js';
import { walNative } from '../native/wal.js';

/**
 * Sync-enabled data directories (PowDB 0.29 `sync-enable`): their identity,
 * the `sync` block backups record for them, and the restore modes, all as
 * the reference powdb-backup 0.29 has them.
 */

export const SYNC_DIR = '.powdb-sync';
/** A retained segment's name: the first and last LSN it holds, zero-padded. */
export const SEGMENT_NAME = /^retained-(\d{20})-(\d{20})\.prul$/;

/** The retained segments of a sync-enabled `dataDir`, oldest first (none when it keeps none). */
export async function retainedSegments(
  dataDir: string,
): Promise<{ name: string; path: string; start_lsn: bigint; end_lsn: bigint }[]> {
  const dir = join(dataDir, SYNC_DIR, 'retained');
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names
    .flatMap((name) => {
      const m = SEGMENT_NAME.exec(name);
      return m ? [{ name, path: join(dir, name), start_lsn: BigInt(m[1]!), end_lsn: BigInt(m[2]!) }] : [];
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}
export const IDENTITY_FILE = 'identity.json';
const WAL_FORMAT_VERSION = 1;
const SEGMENT_FORMAT_VERSION = 1;
const IDENTITY_FORMAT_VERSION = 1;

/** `.powdb-sync/identity.json`: which replication lineage a database belongs to. */
export interface SyncIdentity {
  format_version: number;
  /** 32 hex digits, never all zero. */
  database_id: string;
  primary_generation: bigint;
  created_unix_secs: bigint;
}

/** The `sync` block of `manifest.json` / `increment.json` (and of our snapshots). */
export interface SyncBlock {
  identity: SyncIdentity;
  source_lsn: bigint;
  catalog_blake3_hex: string;
  wal_format_version: number;
  catalog_version: number;
  retained_segment_format_version: number;
}

/** How a restore treats the sync identity of what it restores (the reference's three modes). */
export type SyncMode = 'strip' | 'preserve' | 'fork';
export const SYNC_MODES: readonly SyncMode[] = ['strip', 'preserve', 'fork'];

const u64 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(2n ** 64n - 1n));
const u16 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(0xffffn), v.transform(Number));
const u32 = v.pipe(v.bigint(), v.minValue(0n), v.maxValue(0xffffffffn), v.transform(Number));

export const identitySchema = v.object({
  format_version: u32,
  database_id: v.string(),
  primary_generation: u64,
  created_unix_secs: u64,
});

export const syncBlockSchema = v.object({
  identity: identitySchema,
  source_lsn: u64,
  catalog_blake3_hex: v.string(),
  wal_format_version: u16,
  catalog_version: u16,
  retained_segment_format_version: u16,
});

/** Why an identity is not one powdb-sync accepts, or null. */
function identityProblem(identity: SyncIdentity): string | null {
  if (identity.format_version !== IDENTITY_FORMAT_VERSION) {
    return `unsupported sync identity format ${identity.format_version}`;
  }
  if (!/^[0-9a-fA-F]{32}$/.test(identity.database_id)) return 'database id must be 32 hex characters';
  if (/^0{32}$/.test(identity.database_id)) return 'database id must be non-zero';
  if (identity.primary_generation === 0n) return 'primary generation must be non-zero';
  return null;
}

/**
 * Checks a manifest's sync block as the reference does (same wording); the
 * block must agree with the manifest's `source_lsn` and `catalog_version`.
 */
export function syncBlockProblem(block: SyncBlock, sourceLsn: bigint, catalogVersion: number): string | null {
  const identity = identityProblem(block.identity);
  if (identity) return identity;
  if (block.source_lsn !== sourceLsn) {
    return `sync snapshot source_lsn ${block.source_lsn} does not match manifest source_lsn ${sourceLsn}`;
  }
  if (block.catalog_blake3_hex === '') return 'sync snapshot catalog hash must be non-empty';
  if (block.wal_format_version !== WAL_FORMAT_VERSION) {
    return `unsupported sync snapshot WAL format ${block.wal_format_version}`;
  }
  if (block.retained_segment_format_version !== SEGMENT_FORMAT_VERSION) {
    return `unsupported retained segment format ${block.retained_segment_format_version}`;
  }
  if (block.catalog_version !== catalogVersion) {
    return 'sync snapshot catalog format does not match manifest catalog format';
  }
  return null;
}

/**
 * True when `next` continues the history of `base`: both plain, or the same
 * identity (the WAL and segment formats are the only ones a block may name).
 */
export function sameLineage(base: SyncIdentity | undefined, next: SyncIdentity | undefined): boolean {
  if (!base || !next) return !base && !next;
  return (
    base.format_version === next.format_version &&
    base.database_id === next.database_id &&
    base.primary_generation === next.primary_generation &&
    base.created_unix_secs === next.created_unix_secs
  );
}

/** Throws ERR_SYNC_LINEAGE unless `next` continues the lineage of `base` (or `tolerated`). */
export function assertSameLineage(
  base: SyncIdentity | undefined,
  next: SyncIdentity | undefined,
  what: string,
  tolerated = false,
): void {
  if (tolerated || sameLineage(base, next)) return;
  const describe = (i: SyncIdentity | undefined) =>
    i ? `database ${i.database_id} generation ${i.primary_generation}` : 'not sync-enabled';
  throw new BackupError('ERR_SYNC_LINEAGE', `${what} (base: ${describe(base)}; now: ${describe(next)})`);
}

/** The identity of a sync-enabled data directory, or undefined when sync is off. */
export async function readSyncIdentity(dataDir: string): Promise<SyncIdentity | undefined> {
  const file = join(dataDir, SYNC_DIR, IDENTITY_FILE);
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new BackupError('ERR_UNSAFE_PATH', `${file} is a symlink; backups never follow symlinks`);
    }
    throw err;
  }
  const bad = (why: string) => new BackupError('ERR_SYNC_IDENTITY', `${file} is not a valid sync identity: ${why}`);
  let text: string;
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0);
    text = buffer.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
  const identity = parseJsonAs(text, identitySchema, bad);
  const problem = identityProblem(identity);
  if (problem) throw bad(problem);
  return identity;
}

/** The sync block a backup of a sync-enabled directory records. */
export function syncBlock(
  identity: SyncIdentity,
  sourceLsn: bigint,
  catalogHash: string,
  catalogVersion: number,
): SyncBlock {
  return {
    identity: {
      format_version: identity.format_version,
      database_id: identity.database_id,
      primary_generation: identity.primary_generation,
      created_unix_secs: identity.created_unix_secs,
    },
    source_lsn: sourceLsn,
    catalog_blake3_hex: catalogHash,
    wal_format_version: WAL_FORMAT_VERSION,
    catalog_version: catalogVersion,
    retained_segment_format_version: SEGMENT_FORMAT_VERSION,
  };
}

/** The block in the field order the reference writes (it follows `catalog_version`). */
export function orderedSyncBlock(block: SyncBlock): SyncBlock {
  return syncBlock(block.identity, block.source_lsn, block.catalog_blake3_hex, block.catalog_version);
}

/** Writes `identity.json` into a restored directory as powdb-sync does: fsynced, linked into place, dir fsynced. */
async function writeIdentity(dest: string, identity: SyncIdentity): Promise<void> {
  const dir = join(dest, SYNC_DIR);
  await mkdir(dir, { mode: 0o700 });
  const temp = join(dir, `.${IDENTITY_FILE}.tmp.${process.pid}`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(formatJson(identity));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await link(temp, join(dir, IDENTITY_FILE));
  await rm(temp);
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** A new lineage: a random non-zero database id, generation 1. */
function newIdentity(): SyncIdentity {
  let id = randomBytes(16);
  while (id.every((b) => b === 0)) id = randomBytes(16);
  return {
    format_version: IDENTITY_FORMAT_VERSION,
    database_id: id.toString('hex'),
    primary_generation: 1n,
    created_unix_secs: BigInt(Math.floor(Date.now() / 1000)),
  };
}

/** Refuses `preserve` for a backup that records no sync identity (before anything is written). */
export function assertSyncModeFits(block: SyncBlock | undefined, mode: SyncMode): void {
  if (mode === 'preserve' && !block) {
    throw new BackupError(
      'ERR_SYNC_MODE',
      'sync mode preserve needs a backup of a sync-enabled directory; this one records no sync identity',
    );
  }
}

/** What a restore did with the sync identity. */
export interface SyncOutcome {
  mode: SyncMode;
  /** The identity written into the restored directory (preserve, fork). */
  identity?: SyncIdentity;
}

/**
 * Applies a restore's sync mode to the restored directory `dest` (still
 * private): the catalog must be the one the sync block names; `preserve`
 * writes the backup's identity (it needs one), `fork` a new one, `strip` none.
 */
export async function applySyncMode(
  dest: string,
  block: SyncBlock | undefined,
  mode: SyncMode,
): Promise<SyncOutcome | undefined> {
  assertSyncModeFits(block, mode);
  if (block) {
    const { blake3Hex } = await native.hashFile(join(dest, 'catalog.bin'));
    if (blake3Hex !== block.catalog_blake3_hex) {
      throw new BackupError('ERR_INTEGRITY', 'restored catalog hash does not match sync snapshot metadata');
    }
  }
  const identity =
    mode === 'preserve' ? orderedSyncBlock(block!).identity : mode === 'fork' ? newIdentity() : undefined;
  if (identity) await writeIdentity(dest, identity);
  if (!block && mode === 'strip') return undefined;
  return identity ? { mode, identity } : { mode };
}

/** Parses a `--sync-mode` value. */
export function parseSyncMode(value: string | undefined): SyncMode {
  if (value === undefined) return 'strip';
  if ((SYNC_MODES as readonly string[]).includes(value)) return value as SyncMode;
  throw new BackupError('ERR_INVALID_ARG', `unknown sync mode ${JSON.stringify(value)}; use strip, preserve or fork`);
}

/**
 * Refuses a sync-enabled directory whose `wal.log` holds a value too large
 * to store inline: powdb-sync 0.29 cannot archive it, so the directory can
 * no longer checkpoint and its retained history stops.
 */
export async function assertNoOverflow(dataDir: string, archivedThrough?: bigint): Promise<void> {
  const found = await walNative.overflowRecord(join(dataDir, 'wal.log'));
  if (!found) return;
  throw new BackupError(
    'ERR_SYNC_OVERFLOW',
    `${join(dataDir, 'wal.log')} holds a value too large to store inline (WAL record type ${found.kind} at LSN ${found.lsn}): ` +
      `powdb-sync 0.29 cannot archive it, so ${dataDir} can no longer checkpoint` +
      (archivedThrough === undefined ? '' : ` and its archived history stops at LSN ${archivedThrough}`) +
      '. Delete that row or store the value smaller, or turn sync off (remove .powdb-sync/identity.json) and checkpoint.',
  );
}

/** Whether a live process holds the directory's LOCK (the engine writes its PID there). */
export async function heldByLiveProcess(dataDir: string): Promise<boolean> {
  try {
    const pid = Number((await readFile(join(dataDir, 'LOCK'), 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
