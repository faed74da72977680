import { join } from 'node:path';
import { differs } from '../source/compare.js';
import { withDataDir } from '../source/datadir.js';
import { toBackupError } from '../common/errors.js';
import { repoNative, type RepoHandle } from '../native/repo.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import type { VerifyProblem } from '../chain/verify.js';
import type { Snapshot } from './snapshot.js';

/**
 * Every page and file where a stopped data directory differs from a format-2
 * backup (the restore drill of `verify --repo --source`): the backup's chunks
 * are read and compared in memory, nothing is written. Progress counts the
 * backup's bytes compared, file by file and inside large files.
 */
export async function compareSnapshotWithSource(
  handle: RepoHandle,
  snapshot: Snapshot,
  source: string,
  token?: number,
  onProgress?: OperationOptions['onProgress'],
): Promise<VerifyProblem[]> {
  try {
    return await withDataDir(source, async (data) => {
      const problems: VerifyProblem[] = [];
      const inSource = new Set(data.files.map((f) => f.name));
      const inBackup = new Map(snapshot.files.map((f) => [f.name, f]));
      for (const f of snapshot.files) {
        if (!inSource.has(f.name)) problems.push(differs(f.name, `in the backup but not in ${source}`));
      }
      const compared = snapshot.files.filter((f) => inSource.has(f.name));
      const total = compared.reduce((sum, f) => sum + f.len, 0n);
      const progress = new Progress('verify', compared.length, total, onProgress, token);
      for (const f of data.files) {
        const backed = inBackup.get(f.name);
        if (!backed) {
          problems.push(differs(f.name, `in ${source} but not in the backup`));
          continue;
        }
        progress.fileStarted(f.name, backed.len);
        const c = await repoNative.compareFile(handle.handle, backed.lists, backed.len, f.path, backed.heap, token);
        progress.fileDone(f.name, backed.len);
        if (c.equal) continue;
        if (!backed.heap) {
          problems.push(
            differs(f.name, `content differs (${c.sourceLen} bytes in ${source}, ${backed.len} in the backup)`),
          );
          continue;
        }
        const pages = (n: bigint) => (n + 4095n) / 4096n;
        if (c.sourceLen !== backed.len) {
          problems.push(
            differs(f.name, `${pages(c.sourceLen)} pages in ${source}, ${pages(backed.len)} in the backup`),
          );
        }
        for (const page of c.differing) problems.push(differs(f.name, `page ${page} differs`, Number(page)));
        const more = c.differingCount - BigInt(c.differing.length);
        if (more > 0n) problems.push(differs(f.name, `${more} more pages differ`));
      }
      return problems;
    });
  } catch (err) {
    const e = toBackupError(err);
    if (e.code === 'ERR_ABORTED') throw err;
    return [{ code: e.code, message: e.message, file: join(source) }];
  }
}
