import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BackupError } from '../common/errors.js';
import { isDurable, isHeap } from '../common/names.js';
import { native } from '../native/core.js';
import { assertNoOverflow, readSyncIdentity, type SyncIdentity } from './sync.js';

/** A durable file of a data directory, with what it looked like when listed. */
export interface SourceFile {
  name: string;
  path: string;
  size: bigint;
  mtimeNs: bigint;
  /** A page-aligned heap: diffed by page LSN. */
  paged: boolean;
}

/** A data directory that is safe to copy: checkpointed and locked by us. */
export interface DataDirSnapshot {
  dir: string;
  files: SourceFile[];
  /** `catalog.lsn` (0.8+), 0 when absent. */
  catalogLsn: bigint;
  /** The `catalog.bin` format version. */
  catalogVersion: number;
  /** `.powdb-sync/identity.json` of a sync-enabled directory. */
  sync?: SyncIdentity;
}

const PAGE_SIZE = 4096n;
const WAL_HEADER = Buffer.from('PWAL');

async function statOrNull(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads at most `n` bytes from the start of a file (never the whole file). */
async function readHead(path: string, n: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(n), 0, n, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Refuses a WAL holding records that are not yet in the pages; `then` is what the user does once it is checkpointed. */
export async function checkCheckpointed(dir: string, then = 'back up'): Promise<void> {
  const wal = join(dir, 'wal.log');
  const st = await statOrNull(wal);
  if (!st || st.size === 0n) return;
  if (st.size === 8n && (await readHead(wal, 4)).equals(WAL_HEADER)) return;
  throw new BackupError(
    'ERR_NOT_CHECKPOINTED',
    `${wal} holds ${st.size} bytes of WAL records not yet checkpointed into the pages. ` +
      `Stop the PowDB server cleanly (or open and close the directory with PowDB) so that it checkpoints, then ${then}.`,
  );
}

async function readCatalogVersion(dir: string): Promise<number> {
  const head = await readHead(join(dir, 'catalog.bin'), 6);
  if (head.length < 6 || head.toString('latin1', 0, 4) !== 'BCAT') {
    throw new BackupError('ERR_NOT_A_DATA_DIR', `${join(dir, 'catalog.bin')}: bad catalog magic`);
  }
  return head.readUInt16LE(4);
}

async function readCatalogLsn(dir: string): Promise<bigint> {
  const path = join(dir, 'catalog.lsn');
  const st = await statOrNull(path);
  if (!st) return 0n;
  if (!st.isFile() || st.size !== 8n) throw new BackupError('ERR_NOT_A_DATA_DIR', `${path} is not an 8-byte LSN`);
  return (await readHead(path, 8)).readBigUInt64LE(0);
}

async function describe(dir: string, name: string): Promise<SourceFile> {
  const path = join(dir, name);
  const st = await lstat(path, { bigint: true });
  if (!st.isFile()) {
    throw new BackupError('ERR_UNSAFE_PATH', `${path} is not a regular file (symlinks are not followed)`);
  }
  return { name, path, size: st.size, mtimeNs: st.mtimeNs, paged: isHeap(name) && st.size % PAGE_SIZE === 0n };
}

/**
 * Runs `work` on a consistent view of the PowDB data directory `dir`: it must
 * exist, hold `catalog.bin`, not be locked by a live process, and have a
 * checkpointed WAL (in a sync-enabled directory, the checkpoint archived
 * every record into a retained segment first). The engine's writer lock is held
 * until `work` ends, so a server cannot start in the middle of a backup.
 */
export async function withDataDir<T>(dir: string, work: (snapshot: DataDirSnapshot) => Promise<T>): Promise<T> {
  const st = await statOrNull(dir);
  if (!st?.isDirectory()) throw new BackupError('ERR_NOT_A_DATA_DIR', `data directory ${dir} does not exist`);
  if (!(await statOrNull(join(dir, 'catalog.bin')))) {
    throw new BackupError('ERR_NOT_A_DATA_DIR', `${dir} has no catalog.bin: not a PowDB data directory`);
  }
  const lock = await native.acquireLock(dir);
  try {
    await checkCheckpointed(dir).catch(async (err: unknown) => {
      // A sync-enabled directory that cannot checkpoint: say why.
      if (await statOrNull(join(dir, '.powdb-sync', 'identity.json'))) await assertNoOverflow(dir);
      throw err;
    });
    const names = (await readdir(dir)).filter(isDurable).sort();
    const files = await Promise.all(names.map((name) => describe(dir, name)));
    const snapshot = {
      dir,
      files,
      catalogLsn: await readCatalogLsn(dir),
      catalogVersion: await readCatalogVersion(dir),
      sync: await readSyncIdentity(dir),
    };
    return await work(snapshot);
  } finally {
    await native.releaseLock(lock);
  }
}

/** Fails with ERR_SOURCE_CHANGED when a file or the WAL changed since the snapshot. */
export async function assertUnchanged(snapshot: DataDirSnapshot): Promise<void> {
  for (const file of snapshot.files) {
    const st = await statOrNull(file.path);
    if (!st || st.size !== file.size || st.mtimeNs !== file.mtimeNs) {
      throw new BackupError(
        'ERR_SOURCE_CHANGED',
        `${file.path} changed while it was being backed up; is a PowDB server writing to ${snapshot.dir}?`,
      );
    }
  }
  try {
    await checkCheckpointed(snapshot.dir);
  } catch {
    throw new BackupError('ERR_SOURCE_CHANGED', `${snapshot.dir}/wal.log grew while backing up; a writer is active`);
  }
}

/** The `catalog_version` a manifest records: 5 stands for every version up to 5. */
export function manifestCatalogVersion(catalogVersion: number): number {
  return Math.max(catalogVersion, 5);
}
