import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { BackupError, toBackupError } from './errors.js';

/** Prefix of staging directories: recognisable leftovers of an interrupted run. */
export const STAGING_MARK = '.powdb-partial-';

async function fsyncPath(path: string): Promise<void> {
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
      `${what} destination ${dest} is not empty; ${what} requires a fresh or empty directory`,
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
  const staging = join(parent, `${STAGING_MARK}${basename(target)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const result = await build(staging);
    await fsyncPath(staging);
    await checkDestination(target, what);
    await rename(staging, target);
    await fsyncPath(parent);
    return result;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    const error = toBackupError(err);
    if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') {
      throw new BackupError('ERR_DEST_NOT_EMPTY', `${what} destination ${dest} is not empty; ${what} requires a fresh or empty directory`);
    }
    throw error;
  }
}
