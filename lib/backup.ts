import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readChain, chainState, type ChainState } from './chain.js';
import { BackupError } from './errors.js';
import {
  FORMAT_VERSION,
  MANIFEST_FILE,
  INCREMENT_FILE,
  formatBackupManifest,
  formatIncrementManifest,
  type BackupManifest,
  type ChangedFile,
  type IncrementManifest,
} from './manifest.js';
import { native } from './native.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './pool.js';
import { cancellable, type Cancellation } from './abort.js';
import { crashPoint } from './crashpoint.js';
import {
  assertUnchanged,
  manifestCatalogVersion,
  withDataDir,
  type DataDirSnapshot,
  type SourceFile,
} from './datadir.js';
import { Progress, type OperationOptions } from './progress.js';
import { buildAtomically, writeFileDurably } from './staging.js';

/** Options of `fullBackup` and `incrementalBackup`. */
export interface BackupOptions extends OperationOptions {
  /**
   * An extra file to store in the backup, made from its manifest and written
   * just before it (the repository's catalog record). Restores ignore it.
   */
  sidecar?: (manifest: BackupManifest | IncrementManifest) => { name: string; text: string };
}

/** Writes the sidecar, then the manifest: the manifest is always the last file of a backup. */
async function finish(
  staging: string,
  manifest: BackupManifest | IncrementManifest,
  options: BackupOptions,
  cancel: Cancellation,
): Promise<void> {
  cancel.check(); // the last moment an abort can still leave nothing behind
  const side = options.sidecar?.(manifest);
  if (side) await writeFileDurably(join(staging, side.name), side.text);
  if ('files' in manifest) await writeFileDurably(join(staging, MANIFEST_FILE), formatBackupManifest(manifest));
  else await writeFileDurably(join(staging, INCREMENT_FILE), formatIncrementManifest(manifest));
  crashPoint('manifest-written');
}

const nowSecs = () => BigInt(Math.floor(Date.now() / 1000));
const maxOf = (values: bigint[]) => values.reduce((a, b) => (b > a ? b : a), 0n);

/**
 * Full backup of a checkpointed PowDB data directory into `dest` (absent or
 * empty). Every durable file is copied and hashed, `manifest.json` is written
 * last and the backup appears at `dest` in one rename, or not at all.
 */
export async function fullBackup(dataDir: string, dest: string, options: BackupOptions = {}): Promise<BackupManifest> {
  return cancellable(options.signal, (cancel) =>
    withDataDir(dataDir, (source) =>
      buildAtomically(dest, 'backup', async (staging) => {
        const copies = await forEachFile(source, options, cancel, (f) =>
          native.copyHashed(f.path, join(staging, f.name), f.paged, cancel.token),
        );
        await assertUnchanged(source);
        const manifest: BackupManifest = {
          format_version: FORMAT_VERSION,
          created_unix_secs: nowSecs(),
          source_lsn: maxOf([source.catalogLsn, ...copies.map((c) => c.maxPageLsn)]),
          catalog_version: manifestCatalogVersion(source.catalogVersion),
          files: source.files.map((f, i) => ({ name: f.name, len: copies[i]!.len, blake3_hex: copies[i]!.blake3Hex })),
        };
        await finish(staging, manifest, options, cancel);
        return manifest;
      }),
    ),
  );
}

/** Runs `work` on every durable file of `source`, reporting progress after each. */
async function forEachFile<R>(
  source: DataDirSnapshot,
  options: BackupOptions,
  cancel: Cancellation,
  work: (file: SourceFile) => Promise<R>,
): Promise<R[]> {
  crashPoint('lock-acquired');
  const total = source.files.reduce((sum, f) => sum + f.size, 0n);
  const progress = new Progress('backup', source.files.length, total, options.onProgress);
  return mapLimit(source.files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
    cancel.check();
    const result = await work(f);
    progress.fileDone(f.name, f.size);
    crashPoint('file-done');
    return result;
  });
}

/** The chain an increment builds on: a full backup dir, or [full, ...increments]. */
async function baseState(base: string | readonly string[]): Promise<ChainState> {
  const [fullDir, ...incrementDirs] = typeof base === 'string' ? [base] : base;
  if (fullDir === undefined) throw new BackupError('ERR_INVALID_ARG', 'the base chain is empty');
  return chainState(await readChain(fullDir, incrementDirs));
}

interface FileChange {
  change: ChangedFile | null;
  maxPageLsn: bigint;
}

function wholeEntry(name: string, copy: { len: bigint; blake3Hex: string }): ChangedFile {
  return { Whole: { name, len: copy.len, blake3_hex: copy.blake3Hex } };
}

/**
 * Ships a whole file when its hash differs from the base's (or the base lacks
 * it). Small files are hashed first so unchanged ones are never written; a
 * heap on this path is copied straight away to learn its highest page LSN.
 */
async function wholeChange(file: SourceFile, base: ChainState, staging: string, token?: number): Promise<FileChange> {
  const dst = join(staging, file.name);
  const baseHash = base.wholeHashes.get(file.name);
  if (file.paged) {
    const copy = await native.copyHashed(file.path, dst, true, token);
    if (copy.blake3Hex !== baseHash) return { change: wholeEntry(file.name, copy), maxPageLsn: copy.maxPageLsn };
    await rm(dst);
    return { change: null, maxPageLsn: copy.maxPageLsn };
  }
  const digest = await native.hashFile(file.path, token);
  if (digest.blake3Hex === baseHash) return { change: null, maxPageLsn: 0n };
  const copy = await native.copyHashed(file.path, dst, false, token);
  if (copy.blake3Hex !== digest.blake3Hex) {
    throw new BackupError('ERR_SOURCE_CHANGED', `${file.path} changed while it was being backed up`);
  }
  return { change: wholeEntry(file.name, copy), maxPageLsn: 0n };
}

/**
 * A heap ships its pages newer than the base. A heap the base does not have,
 * or one that shrank (its table was dropped and created again), ships whole:
 * page deltas can neither create unstamped pages nor shrink a file.
 */
async function fileChange(file: SourceFile, base: ChainState, staging: string, token?: number): Promise<FileChange> {
  const baseLen = base.lengths.get(file.name);
  if (!file.paged || baseLen === undefined || file.size < baseLen) return wholeChange(file, base, staging, token);
  const result = await native.writeDelta(file.path, join(staging, `${file.name}.delta`), base.sourceLsn, token);
  const d = result.delta;
  const change: ChangedFile | null = d
    ? {
        Pages: {
          name: file.name,
          total_pages: d.totalPages,
          page_indices: d.pageIndices,
          delta_file: `${file.name}.delta`,
          delta_len: d.deltaLen,
          delta_blake3_hex: d.blake3Hex,
        },
      }
    : null;
  return { change, maxPageLsn: result.maxPageLsn };
}

/**
 * Incremental backup of `dataDir` on top of `base`: a full backup directory,
 * or a chain `[full, increment1, ...]` whose newest element this increment
 * follows. Ships heap pages whose LSN exceeds the base's `source_lsn`, and
 * whole files whose hash changed, into `dest` with an `increment.json`.
 */
export async function incrementalBackup(
  dataDir: string,
  base: string | readonly string[],
  dest: string,
  options: BackupOptions = {},
): Promise<IncrementManifest> {
  const state = await baseState(base);
  return cancellable(options.signal, (cancel) =>
    withDataDir(dataDir, (source) =>
      buildAtomically(dest, 'backup', async (staging) => {
        const changes = await forEachFile(source, options, cancel, (f) => fileChange(f, state, staging, cancel.token));
        await assertUnchanged(source);
        const sourceLsn = maxOf([source.catalogLsn, ...changes.map((c) => c.maxPageLsn)]);
        if (sourceLsn < state.sourceLsn) {
          throw new BackupError(
            'ERR_BASE_MISMATCH',
            `${dataDir} is at LSN ${sourceLsn}, behind the base's ${state.sourceLsn}: the base was not taken from this database`,
          );
        }
        const manifest: IncrementManifest = {
          format_version: FORMAT_VERSION,
          created_unix_secs: nowSecs(),
          base_source_lsn: state.sourceLsn,
          source_lsn: sourceLsn,
          catalog_version: manifestCatalogVersion(source.catalogVersion),
          changed: changes.flatMap((c) => (c.change ? [c.change] : [])),
        };
        await finish(staging, manifest, options, cancel);
        return manifest;
      }),
    ),
  );
}
