import { join } from 'node:path';
import { histories, type Chain, type ChainState } from '../chain/chain.js';
import { withDataDir } from './datadir.js';
import { toBackupError } from '../common/errors.js';
import { native } from '../native/core.js';
import type { VerifyProblem } from '../common/report.js';

/** A difference between a backup and a data directory, on a file or one of its pages. */
export function differs(file: string, message: string, page?: number): VerifyProblem {
  return { code: 'ERR_DIFFERS', message: `${file}: ${message}`, file, ...(page === undefined ? {} : { page }) };
}

/** Every page and file where a stopped data directory differs from what the chain restores. */
export async function compareWithSource(
  chain: Chain,
  state: ChainState,
  source: string,
  token?: number,
): Promise<VerifyProblem[]> {
  const all = histories(chain);
  try {
    return await withDataDir(source, async (snapshot) => {
      const problems: VerifyProblem[] = [];
      const inSource = new Set(snapshot.files.map((f) => f.name));
      for (const name of state.lengths.keys()) {
        if (!inSource.has(name)) problems.push(differs(name, `in the backup but not in ${source}`));
      }
      for (const f of snapshot.files) {
        const layers = all.get(f.name);
        if (!layers || !state.lengths.has(f.name)) {
          problems.push(differs(f.name, `in ${source} but not in the backup`));
        } else if (f.paged) {
          const d = await native.diffHeaps({ heap: f.path }, { layers }, token);
          if (d.aPages !== d.bPages)
            problems.push(differs(f.name, `${d.aPages} pages in ${source}, ${d.bPages} in the backup`));
          for (const page of d.differing) problems.push(differs(f.name, `page ${page} differs`, page));
          if (d.differingCount > d.differing.length) {
            problems.push(differs(f.name, `${d.differingCount - d.differing.length} more pages differ`));
          }
        } else {
          const digest = await native.hashFile(f.path, token);
          if (digest.blake3Hex !== state.wholeHashes.get(f.name)) {
            problems.push(
              differs(
                f.name,
                `content differs (${digest.len} bytes in ${source}, ${state.lengths.get(f.name)} in the backup)`,
              ),
            );
          }
        }
      }
      return problems;
    });
  } catch (err) {
    if (toBackupError(err).code === 'ERR_ABORTED') throw err;
    const e = toBackupError(err);
    return [{ code: e.code, message: e.message, file: join(source) }];
  }
}
