// The restore drill of `verify --source`: every file and page where a stopped
// data directory differs from a backup, without restoring it. One walk over
// the directory for both formats; each supplies how one file compares (a
// chain: its layers; a repository: its chunks), nothing is written.
import { join } from 'node:path';
import { withDataDir } from './datadir.js';
import { toBackupError } from '../common/errors.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import type { VerifyProblem } from '../common/report.js';

/** A difference between a backup and a data directory, on a file or one of its pages. */
export function differs(file: string, message: string, page?: number): VerifyProblem {
  return { code: 'ERR_DIFFERS', message: `${file}: ${message}`, file, ...(page === undefined ? {} : { page }) };
}

/** How one file of the directory compares with the backup's. */
export interface FileComparison {
  equal: boolean;
  sourceLen: bigint;
  /** The first differing pages of a heap (none for other files). */
  differing: number[];
  differingCount: number;
}

/** A file of the backup: its name, length, whether it is a heap, and how to compare a file with it. */
export interface BackedFile {
  name: string;
  len: bigint;
  heap: boolean;
  compare(path: string, token?: number): Promise<FileComparison>;
}

const pages = (len: bigint) => (len + 4095n) / 4096n;

/** What a differing file contributes to the report. */
function differences(backed: BackedFile, c: FileComparison, source: string): VerifyProblem[] {
  const name = backed.name;
  if (!backed.heap) {
    return [differs(name, `content differs (${c.sourceLen} bytes in ${source}, ${backed.len} in the backup)`)];
  }
  const found: VerifyProblem[] = [];
  if (c.sourceLen !== backed.len) {
    found.push(differs(name, `${pages(c.sourceLen)} pages in ${source}, ${pages(backed.len)} in the backup`));
  }
  for (const page of c.differing) found.push(differs(name, `page ${page} differs`, page));
  if (c.differingCount > c.differing.length) {
    found.push(differs(name, `${c.differingCount - c.differing.length} more pages differ`));
  }
  return found;
}

/**
 * Every page and file where the stopped data directory `source` differs from
 * the backup's `files`; progress counts the backup's bytes compared. A source
 * that cannot be read is one problem, not an exception (an abort still is).
 */
export async function compareWithSource(
  files: BackedFile[],
  source: string,
  options: { token?: number; onProgress?: OperationOptions['onProgress'] } = {},
): Promise<VerifyProblem[]> {
  try {
    return await withDataDir(source, async (data) => {
      const problems: VerifyProblem[] = [];
      const inSource = new Set(data.files.map((f) => f.name));
      const inBackup = new Map(files.map((f) => [f.name, f]));
      for (const f of files) {
        if (!inSource.has(f.name)) problems.push(differs(f.name, `in the backup but not in ${source}`));
      }
      const compared = files.filter((f) => inSource.has(f.name));
      const total = compared.reduce((sum, f) => sum + f.len, 0n);
      const progress = new Progress('verify', compared.length, total, options.onProgress, options.token);
      for (const f of data.files) {
        const backed = inBackup.get(f.name);
        if (!backed) {
          problems.push(differs(f.name, `in ${source} but not in the backup`));
          continue;
        }
        progress.fileStarted(f.name, backed.len);
        const c = await backed.compare(f.path, options.token);
        progress.fileDone(f.name, backed.len);
        if (!c.equal) problems.push(...differences(backed, c, source));
      }
      return problems;
    });
  } catch (err) {
    const e = toBackupError(err);
    if (e.code === 'ERR_ABORTED') throw err;
    return [{ code: e.code, message: e.message, file: join(source) }];
  }
}
