import { join } from 'node:path';
import { cancellable } from './abort.js';
import { assertContinues } from './chain.js';
import { toBackupError } from './errors.js';
import {
  INCREMENT_FILE,
  MANIFEST_FILE,
  readIncrement,
  readManifest,
  type FileEntry,
  type IncrementManifest,
} from './manifest.js';
import { isHeap } from './names.js';
import { native, type ContentKind } from './native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './pool.js';
import { Progress, type OperationOptions } from './progress.js';

/** One problem `verify` found; `page` is the heap page it concerns. */
export interface VerifyProblem {
  code: string;
  message: string;
  file: string;
  page?: number;
}

/** What `verify` checked (`checks`, human lines) and found (`errors`, in chain and manifest order). */
export interface VerifyReport {
  ok: boolean;
  checks: string[];
  errors: VerifyProblem[];
}

/** A file to check: where it is, what its manifest says, and how to read it. */
interface FileCheck {
  path: string;
  expected: { name: string; len: bigint; blake3Hex: string };
  artifact: 'backup' | 'increment';
  kind: ContentKind;
  maxLsn: bigint;
  pages?: { totalPages: number; pageIndices: number[] };
}

function kindOf(name: string, len: bigint): ContentKind {
  if (name === 'catalog.bin') return 'catalog';
  return isHeap(name) && len % 4096n === 0n ? 'heap' : 'whole';
}

function wholeCheck(dir: string, f: FileEntry, artifact: FileCheck['artifact'], maxLsn: bigint): FileCheck {
  const expected = { name: f.name, len: f.len, blake3Hex: f.blake3_hex };
  return { path: join(dir, f.name), expected, artifact, kind: kindOf(f.name, f.len), maxLsn };
}

function incrementChecks(dir: string, m: IncrementManifest): FileCheck[] {
  return m.changed.map((c) => {
    if ('Whole' in c) return wholeCheck(dir, c.Whole, 'increment', m.source_lsn);
    const p = c.Pages;
    return {
      path: join(dir, p.delta_file),
      expected: { name: p.delta_file, len: p.delta_len, blake3Hex: p.delta_blake3_hex },
      artifact: 'increment',
      kind: 'delta',
      maxLsn: m.source_lsn,
      pages: { totalPages: p.total_pages, pageIndices: p.page_indices },
    };
  });
}

function problem(err: unknown, file: string): VerifyProblem {
  const e = toBackupError(err);
  return { code: e.code, message: e.message, file };
}

/**
 * Checks a full backup and increments without restoring them: manifests,
 * names, chain continuity, every file's length and BLAKE3, delta records,
 * `catalog.bin` magic, version and CRC, each heap page's CRC (where the page
 * has one) and that no page LSN exceeds its manifest's `source_lsn`. Each
 * byte is read once. Problems are reported, never thrown.
 */
export async function verifyChain(
  fullDir: string,
  incrementDirs: readonly string[],
  options: OperationOptions = {},
): Promise<VerifyReport> {
  const checks: string[] = [];
  const errors: VerifyProblem[] = [];
  const files: FileCheck[] = [];
  try {
    const full = await readManifest(fullDir);
    checks.push(`${fullDir}: ${MANIFEST_FILE} format 1, ${full.files.length} files, source LSN ${full.source_lsn}`);
    files.push(...full.files.map((f) => wholeCheck(fullDir, f, 'backup', full.source_lsn)));
    let running = full.source_lsn;
    for (const dir of incrementDirs) {
      const m = await readIncrement(dir);
      assertContinues(running, m, dir);
      checks.push(`${dir}: ${INCREMENT_FILE} continues the chain at LSN ${running}, reaches ${m.source_lsn}`);
      files.push(...incrementChecks(dir, m));
      running = m.source_lsn;
    }
  } catch (err) {
    errors.push(problem(err, fullDir));
  }

  const total = files.reduce((sum, f) => sum + f.expected.len, 0n);
  const progress = new Progress('verify', files.length, total, options.onProgress);
  const results = await cancellable(options.signal, (cancel) =>
    mapLimit(files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
      cancel.check();
      const found = await native
        .verifyFile(f.path, f.expected, f.artifact, f.kind, f.maxLsn, f.pages, cancel.token)
        .catch((err) => {
          if (toBackupError(err).code === 'ERR_ABORTED') throw err; // an abort is not a finding
          return [problem(err, f.path)];
        });
      progress.fileDone(f.expected.name, f.expected.len);
      return found;
    }),
  );
  results.forEach((found, i) => {
    const f = files[i]!;
    if (found.length === 0) checks.push(`${f.path}: ${f.expected.len} bytes, BLAKE3 and ${f.kind} checks ok`);
    for (const { code, message, page } of found) {
      errors.push({ code, message, file: f.path, ...(page == null ? {} : { page }) });
    }
  });
  return { ok: errors.length === 0, checks, errors };
}

/** Checks a full backup without restoring it; see `verifyChain`. */
export function verifyBackup(dir: string, options: OperationOptions = {}): Promise<VerifyReport> {
  return verifyChain(dir, [], options);
}
