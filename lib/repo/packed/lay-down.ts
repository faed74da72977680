// Writing the files of a snapshot into a directory, all at once: files
// backed up side by side share packs, and each pack is read once for all.
import { join } from 'node:path';
import { crashPoint } from '../../common/crashpoint.js';
import { repoNative } from '../../native/repo.js';
import { Progress, type OperationOptions } from '../../common/progress.js';
import type { Snapshot } from '../snapshot.js';
import type { PackedContext } from './context.js';

/**
 * Writes every file of backup `id` into `staging`, all at once: files
 * backed up side by side share packs, and each pack is read once for all
 * of them. With `hash`, returns their BLAKE3s.
 */
export async function layDown(
  repo: PackedContext,
  snapshot: Snapshot,
  staging: string,
  hash: boolean,
  options: OperationOptions,
  token: number | undefined,
  check: () => void,
): Promise<(string | null)[]> {
  const total = snapshot.files.reduce((sum, f) => sum + f.len, 0n);
  const progress = new Progress('restore', snapshot.files.length, total, options.onProgress, token);
  check();
  for (const f of snapshot.files) progress.fileStarted(f.name, f.len);
  const files = snapshot.files.map((f) => ({ lists: f.lists, len: f.len, dest: join(staging, f.name) }));
  const hashes = await repoNative.restoreFiles(repo.handle.handle, files, hash, token);
  for (const f of snapshot.files) progress.fileDone(f.name, f.len);
  crashPoint('file-done');
  return hashes;
}
