import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { crashPoint } from './crashpoint.js';
import { BackupError, toBackupError } from './errors.js';
import { STAGING_MARK } from './names.js';

/** Whether anything (a symlink too) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

const STAGING_NAME = /^\.powdb-partial-.*-(\d+)-[0-9a-f]{8}$/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes staging directories in `parent` left by processes that died mid-run. */
export async function removeAbandonedStaging(parent: string): Promise<string[]> {
  const removed = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const pid = STAGING_NAME.exec(name)?.[1];
    if (pid !== undefined && !isAlive(Number(pid))) {
      await rm(join(parent, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

/** fsyncs a file or directory. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Refuses a destination that is a symlink, a file, or a non-empty directory. */
async function checkDestination(dest: string, what: string): Promise<void> {
  let st;
  try {
    st = await lstat(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) throw new BackupError('ERR_UNSAFE_PATH', `${what} destination ${dest} is a symlink`);
  if (!st.isDirectory() || (await readdir(dest)).length > 0) {
    throw new BackupError(
      'ERR_DEST_NOT_EMPTY',
      `${what} destination ${dest} is not empty; ${what} requires a fresh or empty directory${what === 'restore' ? ' (to restore into an existing data directory of the same database, rewriting only what differs, add --delta)' : ''}`,
    );
  }
}

/** Writes a small file durably (0600, fsynced), failing if it exists. */
export async function writeFileDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Builds `dest` atomically: `build` fills a private (0700) staging directory
 * beside it, which is fsynced and renamed into place only when `build`
 * succeeds. On failure the staging directory is removed and `dest` is as it was.
 */
export async function buildAtomically<T>(
  dest: string,
  what: 'backup' | 'restore',
  build: (staging: string) => Promise<T>,
): Promise<T> {
  const target = resolve(dest);
  await checkDestination(target, what);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  await removeAbandonedStaging(parent);
  const staging = join(parent, `${STAGING_MARK}${basename(target)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const result = await build(staging);
    await fsyncPath(staging);
    crashPoint('staging-synced');
    await checkDestination(target, what);
    await rename(staging, target);
    crashPoint('renamed');
    await fsyncPath(parent);
    return result;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    const error = toBackupError(err);
    if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') {
      throw new BackupError(
        'ERR_DEST_NOT_EMPTY',
        `${what} destination ${dest} is not empty; ${what} requires a fresh or empty directory${what === 'restore' ? ' (to restore into an existing data directory of the same database, rewriting only what differs, add --delta)' : ''}`,
      );
    }
    throw error;
  }
}

/**
 * Runs `work` in a private (0700) scratch directory in `parent`, removed
 * afterwards; named like a staging directory, so one a killed process left
 * is removed by the next run (removeAbandonedStaging).
 */
export async function withScratchDir<T>(parent: string, label: string, work: (dir: string) => Promise<T>): Promise<T> {
  await mkdir(parent, { recursive: true, mode: 0o700 });
  await removeAbandonedStaging(parent);
  const dir = join(parent, `${STAGING_MARK}${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
