import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellable } from '../common/abort.js';
import {
  chainState,
  finalFiles,
  histories,
  mapLayer,
  readChain,
  storedMap,
  type Chain,
  type ChainState,
} from './chain.js';
import { compareWithSource, type BackedFile } from '../source/compare.js';
import { CONTENTS_FILE, contentsMissing, type Contents } from './contents.js';
import { toBackupError } from '../common/errors.js';
import { INCREMENT_FILE, MANIFEST_FILE, type FileEntry, type IncrementManifest } from './manifest.js';
import { isHeap } from '../common/names.js';
import { native, type ContentKind, type RestoreLayer } from '../native/core.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../common/pool.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import type { VerifyProblem, VerifyReport } from '../common/report.js';

export type { VerifyProblem, VerifyReport } from '../common/report.js';

/** A file to check: where it is, what its manifest says, and how to read it. */
interface FileCheck {
  path: string;
  expected: { name: string; len: bigint; blake3Hex: string };
  artifact: 'backup' | 'increment';
  kind: ContentKind;
  maxLsn: bigint;
  pages?: { totalPages: number; pageIndices: number[] };
  /** The backup's content map of this heap, when this copy is the heap's final state. */
  map?: RestoreLayer;
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

/** The content map of heap `name` that the backup in `dir` recorded, if any. */
function ownMap(dir: string, contents: Contents | null, name: string): RestoreLayer | undefined {
  const map = contents?.files.find((f) => f.name === name)?.map;
  return map && mapLayer(dir, map);
}

/**
 * Every artifact of the chain, element by element in manifest order. A heap's
 * final whole copy is checked against the chain's newest content map, any
 * other whole heap copy against the map of its own backup (as verifying that
 * backup alone does), and every map checked by neither, nor by the assembled
 * heaps' check, on its own length and BLAKE3: each backup's maps are read
 * when it is restored alone or serves as the base of an increment.
 */
function artifactChecks(chain: Chain, state: ChainState): FileCheck[] {
  const elements = [
    {
      dir: chain.fullDir,
      contents: chain.fullContents,
      artifact: 'backup' as const,
      files: chain.full.files.map((f) => wholeCheck(chain.fullDir, f, 'backup', chain.full.source_lsn)),
    },
    ...chain.increments.map(({ dir, manifest, contents }) => ({
      dir,
      contents,
      artifact: 'increment' as const,
      files: incrementChecks(dir, manifest),
    })),
  ];
  const files = elements.flatMap((e) => e.files);
  const finalCopies = new Map<string, FileCheck>();
  for (const f of files) if (f.kind !== 'delta') finalCopies.set(f.expected.name, f);
  for (const { manifest } of chain.increments)
    for (const c of manifest.changed) if ('Pages' in c) finalCopies.delete(c.Pages.name);
  for (const [name, check] of finalCopies) if (check.kind === 'heap') check.map = storedMap(state, name);
  for (const e of elements)
    for (const f of e.files) if (f.kind === 'heap' && !f.map) f.map = ownMap(e.dir, e.contents, f.expected.name);
  const checked = new Set(files.flatMap((f) => (f.map ? [f.map.path] : [])));
  for (const name of state.lengths.keys()) {
    const map = storedMap(state, name);
    if (map) checked.add(map.path);
  }
  return elements.flatMap((e) => {
    const maps = (e.contents?.files ?? []).flatMap((f) => (f.map ? [f.map] : []));
    const unchecked = maps.filter((m) => !checked.has(join(e.dir, m.name)));
    return [
      ...e.files,
      ...unchecked.map((m): FileCheck => ({
        path: join(e.dir, m.name),
        expected: { name: m.name, len: m.len, blake3Hex: m.blake3_hex },
        artifact: e.artifact,
        kind: 'whole',
        maxLsn: 0n,
      })),
    ];
  });
}

/**
 * Heaps whose final state is assembled from deltas: rebuilt page by page (in
 * memory only their hashes) and checked against the stored content map and
 * for a v2 superblock over overflow pages.
 */
async function assembledChecks(chain: Chain, state: ChainState, token?: number): Promise<VerifyProblem[]> {
  const patched = new Set(
    chain.increments.flatMap(({ manifest }) => manifest.changed.flatMap((c) => ('Pages' in c ? [c.Pages.name] : []))),
  );
  const all = histories(chain);
  const problems: VerifyProblem[] = [];
  for (const name of [...patched].filter((n) => state.lengths.has(n))) {
    const map = storedMap(state, name);
    try {
      const d = await native.diffHeaps({ layers: all.get(name)! }, map && { map }, token);
      for (const page of d.differing) {
        problems.push({
          code: 'ERR_INTEGRITY',
          message: `${name}: page ${page} differs from the backup's content map`,
          file: name,
          page,
        });
      }
      if (d.shapeProblem) {
        const { page, message } = d.shapeProblem;
        problems.push({ code: 'ERR_PAGE_FORMAT', message: `${name}: page ${page}: ${message}`, file: name, page });
      }
    } catch (err) {
      if (toBackupError(err).code === 'ERR_ABORTED') throw err;
      problems.push(problem(err, name));
    }
  }
  return problems;
}

/** Options of `verifyChain`: with `source`, also compare with that stopped data directory. */
export interface VerifyOptions extends OperationOptions {
  /** A stopped data directory to compare with, file by file and page by page (writes nothing to it but LOCK). */
  source?: string;
}

/** The chain's final files, each compared by its layers (a heap page by page, any other file by its hash). */
function backedFiles(chain: Chain, state: ChainState): BackedFile[] {
  const layersOf = histories(chain);
  return [...state.lengths].flatMap(([name, len]) => {
    const layers = layersOf.get(name);
    if (!layers) return [];
    const heap = isHeap(name) && len % 4096n === 0n;
    const compare = async (path: string, token?: number) => {
      const sourceLen = (await stat(path, { bigint: true })).size;
      if (heap && sourceLen % 4096n === 0n) {
        const d = await native.diffHeaps({ heap: path }, { layers }, token);
        const equal = d.aPages === d.bPages && d.differingCount === 0;
        return { equal, sourceLen, differing: d.differing, differingCount: d.differingCount };
      }
      const digest = await native.hashFile(path, token);
      return { equal: digest.blake3Hex === state.wholeHashes.get(name), sourceLen, differing: [], differingCount: 0 };
    };
    return [{ name, len, heap, compare }];
  });
}

/**
 * Reads the chain and checks what needs no file read: each element's
 * `contents.json`, continuity, the final file list and the sync block.
 */
async function readChecked(
  fullDir: string,
  incrementDirs: readonly string[],
  checks: string[],
  errors: VerifyProblem[],
): Promise<{ chain?: Chain; state?: ChainState }> {
  let chain: Chain | undefined;
  try {
    chain = await readChain(fullDir, incrementDirs);
    const { full } = chain;
    const elements = [{ dir: fullDir, contents: chain.fullContents }, ...chain.increments];
    for (const { dir, contents } of elements) {
      const missing = contents ? null : await contentsMissing(dir);
      if (missing) errors.push(problem(missing, join(dir, CONTENTS_FILE)));
    }
    checks.push(`${fullDir}: ${MANIFEST_FILE} format 1, ${full.files.length} files, source LSN ${full.source_lsn}`);
    let running = full.source_lsn;
    for (const { dir, manifest: m } of chain.increments) {
      checks.push(`${dir}: ${INCREMENT_FILE} continues the chain at LSN ${running}, reaches ${m.source_lsn}`);
      running = m.source_lsn;
    }
  } catch (err) {
    errors.push(problem(err, fullDir));
  }
  const state = chain && chainState(chain);
  if (chain && state) {
    try {
      finalFiles(chain, state);
    } catch (err) {
      errors.push(problem(err, state.contents?.dir ?? fullDir));
    }
    if (state.sync) {
      const { identity, catalog_blake3_hex } = state.sync;
      const where = state.contents?.dir ?? chain.increments.at(-1)?.dir ?? fullDir;
      if (state.wholeHashes.get('catalog.bin') === catalog_blake3_hex) {
        checks.push(
          `${where}: sync block of database ${identity.database_id} generation ${identity.primary_generation}; catalog.bin matches it`,
        );
      } else {
        errors.push({
          code: 'ERR_INTEGRITY',
          message: 'catalog.bin does not match the sync block of the backup',
          file: where,
        });
      }
    }
  }
  return { chain, state };
}

/**
 * Checks a full backup and increments without restoring them: manifests,
 * names, chain continuity, `contents.json`, every file's length and BLAKE3,
 * delta records, `catalog.bin` magic, version and CRC, each heap page's CRC
 * (where the page has one), that no page LSN exceeds its manifest's
 * `source_lsn`, that the final heaps match their content maps, and that no
 * heap's superblock says format 2 over overflow pages. With `source`, every
 * difference from that data directory is reported too. Problems are
 * reported, never thrown.
 */
export async function verifyChain(
  fullDir: string,
  incrementDirs: readonly string[],
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const checks: string[] = [];
  const errors: VerifyProblem[] = [];
  const { chain, state } = await readChecked(fullDir, incrementDirs, checks, errors);
  const files = chain && state ? artifactChecks(chain, state) : [];
  const total = files.reduce((sum, f) => sum + f.expected.len, 0n);
  await cancellable(options.signal, async (cancel) => {
    const progress = new Progress('verify', files.length, total, options.onProgress, cancel.token);
    const results = await mapLimit(files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
      cancel.check();
      progress.fileStarted(f.expected.name, f.expected.len);
      const found = await native
        .verifyFile(
          { path: f.path, ...f.expected, artifact: f.artifact, kind: f.kind, maxLsn: f.maxLsn, ...f.pages, map: f.map },
          cancel.token,
        )
        .catch((err) => {
          if (toBackupError(err).code === 'ERR_ABORTED') throw err; // an abort is not a finding
          return [problem(err, f.path)];
        });
      progress.fileDone(f.expected.name, f.expected.len);
      return found;
    });
    results.forEach((found, i) => {
      const f = files[i]!;
      const mapped = f.map ? ' and content map' : '';
      if (found.length === 0)
        checks.push(`${f.path}: ${f.expected.len} bytes, BLAKE3 and ${f.kind}${mapped} checks ok`);
      for (const { code, message, page } of found) {
        errors.push({ code, message, file: f.path, ...(page == null ? {} : { page }) });
      }
    });
    if (!chain || !state) return;
    const assembled = await assembledChecks(chain, state, cancel.token);
    errors.push(...assembled);
    if (state.contents)
      checks.push(
        `${state.contents.dir}: ${CONTENTS_FILE} lists ${state.lengths.size} files; heaps match their content maps`,
      );
    if (options.source !== undefined) {
      const differences = await compareWithSource(backedFiles(chain, state), options.source, { token: cancel.token });
      errors.push(...differences);
      if (differences.length === 0) checks.push(`${options.source}: every file and page is identical to the backup`);
    }
  });
  return { ok: errors.length === 0, checks, errors };
}

/** Checks a full backup without restoring it; see `verifyChain`. */
export function verifyBackup(dir: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  return verifyChain(dir, [], options);
}
