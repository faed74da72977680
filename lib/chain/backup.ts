import { dirname, join, resolve } from 'node:path';
import { chainState, histories, readChain, storedMap, type ChainState } from './chain.js';
import { liveServerFor } from './online-route.js';
import {
  CONTENTS_FILE,
  CONTENTS_VERSION,
  MAP_SUFFIX,
  formatContents,
  type Contents,
  type ContentsEntry,
} from './contents.js';
import { BackupError } from '../common/errors.js';
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
import { native, type HashResult, type MapSource, type RestoreLayer } from '../native/core.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../common/pool.js';
import { cancellable, type Cancellation } from '../common/abort.js';
import { crashPoint } from '../common/crashpoint.js';
import { assertUnchanged, manifestCatalogVersion, type DataDirSnapshot, type SourceFile } from '../source/datadir.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import { buildAtomically, writeFileDurably } from '../common/staging.js';
import { assertSameLineage, syncBlock, type SyncBlock } from '../source/sync.js';
import { withBackupSource, type LiveServer, type OnlineReport } from '../source/backup-source.js';

/** Options of `fullBackup` and `incrementalBackup`. */
export interface BackupOptions extends OperationOptions {
  /**
   * Back up while this live server serves the data directory: a copy is
   * staged with a write freeze of milliseconds and recovered by the engine
   * before it is stored (docs/online.md). Without it the directory must be stopped.
   */
  server?: LiveServer;
  /** Called with what an online backup's freeze and recovery did (with `server`). */
  onOnline?: (report: OnlineReport) => void;
  /**
   * An extra file to store in the backup, made from its manifest and written
   * just before it (the repository's catalog record). Restores ignore it.
   */
  sidecar?: (manifest: BackupManifest | IncrementManifest) => { name: string; text: string };
}

/**
 * Writes `contents.json`, the sidecar, then the manifest: the manifest is
 * always the last file of a backup.
 */
async function finish(
  staging: string,
  manifest: BackupManifest | IncrementManifest,
  files: ContentsEntry[],
  options: BackupOptions,
  cancel: Cancellation,
): Promise<void> {
  cancel.check(); // the last moment an abort can still leave nothing behind
  const contents: Contents = {
    contents_version: CONTENTS_VERSION,
    created_unix_secs: manifest.created_unix_secs,
    ...('files' in manifest ? {} : { base_source_lsn: manifest.base_source_lsn }),
    source_lsn: manifest.source_lsn,
    files,
  };
  await writeFileDurably(join(staging, CONTENTS_FILE), formatContents(contents));
  const side = options.sidecar?.(manifest);
  if (side) await writeFileDurably(join(staging, side.name), side.text);
  if ('files' in manifest) await writeFileDurably(join(staging, MANIFEST_FILE), formatBackupManifest(manifest));
  else await writeFileDurably(join(staging, INCREMENT_FILE), formatIncrementManifest(manifest));
  crashPoint('manifest-written');
}

/** Where a heap's content map is written in a backup. */
const mapPath = (staging: string, file: SourceFile) => join(staging, `${file.name}${MAP_SUFFIX}`);

/** A file's `contents.json` entry: a heap by its content map, any other file by its BLAKE3. */
function contentsEntry(name: string, len: bigint, content: string | HashResult): ContentsEntry {
  if (typeof content === 'string') return { name, len, blake3_hex: content };
  return { name, len, map: { name: `${name}${MAP_SUFFIX}`, len: content.len, blake3_hex: content.blake3Hex } };
}

const nowSecs = () => BigInt(Math.floor(Date.now() / 1000));

/** The sync block of a backup of `source`, when it is sync-enabled; `catalogHash` is `catalog.bin`'s BLAKE3. */
export function sourceSyncBlock(
  source: DataDirSnapshot,
  sourceLsn: bigint,
  catalogHash: string | undefined,
): { sync?: SyncBlock } {
  if (!source.sync) return {};
  if (catalogHash === undefined) throw new BackupError('ERR_NOT_A_DATA_DIR', `${source.dir} has no catalog.bin`);
  return { sync: syncBlock(source.sync, sourceLsn, catalogHash, manifestCatalogVersion(source.catalogVersion)) };
}

/** BLAKE3 of `catalog.bin` among a backup's files. */
const catalogHash = (files: { name: string; blake3_hex?: string }[]) =>
  files.find((f) => f.name === 'catalog.bin')?.blake3_hex;
const maxOf = (values: bigint[]) => values.reduce((a, b) => (b > a ? b : a), 0n);

/**
 * Full backup of a checkpointed PowDB data directory into `dest` (absent or
 * empty). Every durable file is copied and hashed, `manifest.json` is written
 * last and the backup appears at `dest` in one rename, or not at all.
 */
export async function fullBackup(dataDir: string, dest: string, options: BackupOptions = {}): Promise<BackupManifest> {
  return cancellable(options.signal, (cancel) =>
    withBackupSource(dataDir, options.server, dirname(resolve(dest)), (source, online) => {
      if (online) options.onOnline?.(online);
      return buildAtomically(dest, 'backup', async (staging) => {
        const copies = await forEachFile(source, options, cancel, (f) =>
          native.copyHashed(
            f.path,
            join(staging, f.name),
            f.paged,
            f.paged ? mapPath(staging, f) : undefined,
            cancel.token,
          ),
        );
        await assertUnchanged(source);
        const files = source.files.map((f, i) => ({
          name: f.name,
          len: copies[i]!.len,
          blake3_hex: copies[i]!.blake3Hex,
        }));
        const sourceLsn = maxOf([source.catalogLsn, ...copies.map((c) => c.maxPageLsn)]);
        const manifest: BackupManifest = {
          format_version: FORMAT_VERSION,
          created_unix_secs: nowSecs(),
          source_lsn: sourceLsn,
          catalog_version: manifestCatalogVersion(source.catalogVersion),
          ...sourceSyncBlock(source, sourceLsn, catalogHash(files)),
          files,
        };
        const entries = source.files.map((f, i) =>
          contentsEntry(f.name, copies[i]!.len, copies[i]!.map ?? copies[i]!.blake3Hex),
        );
        await finish(staging, manifest, entries, options, cancel);
        return manifest;
      });
    }),
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
  const progress = new Progress('backup', source.files.length, total, options.onProgress, cancel.token);
  return mapLimit(source.files, options.concurrency ?? DEFAULT_CONCURRENCY, async (f) => {
    cancel.check();
    progress.fileStarted(f.name, f.size);
    const result = await work(f);
    progress.fileDone(f.name, f.size);
    crashPoint('file-done');
    return result;
  });
}

/** The chain an increment builds on (a full backup dir, or [full, ...increments]), and its state. */
interface BaseChain {
  state: ChainState;
  histories: Map<string, RestoreLayer[]>;
}

async function baseChain(base: string | readonly string[]): Promise<BaseChain> {
  const [fullDir, ...incrementDirs] = typeof base === 'string' ? [base] : base;
  if (fullDir === undefined) throw new BackupError('ERR_INVALID_ARG', 'the base chain is empty');
  const chain = await readChain(fullDir, incrementDirs);
  return { state: chainState(chain), histories: histories(chain) };
}

/** What an increment learned about one source file. */
interface FileChange {
  change: ChangedFile | null;
  maxPageLsn: bigint;
  entry: ContentsEntry;
}

/** A file other than a page-aligned heap ships whole when its hash differs from the base's. */
async function wholeChange(file: SourceFile, base: ChainState, staging: string, token?: number): Promise<FileChange> {
  const digest = await native.hashFile(file.path, token);
  const entry = contentsEntry(file.name, digest.len, digest.blake3Hex);
  if (digest.blake3Hex === base.wholeHashes.get(file.name)) return { change: null, maxPageLsn: 0n, entry };
  const copy = await native.copyHashed(file.path, join(staging, file.name), false, undefined, token);
  if (copy.blake3Hex !== digest.blake3Hex) {
    throw new BackupError('ERR_SOURCE_CHANGED', `${file.path} changed while it was being backed up`);
  }
  const change = { Whole: { name: file.name, len: copy.len, blake3_hex: copy.blake3Hex } };
  return { change, maxPageLsn: 0n, entry };
}

/** The base's content map of a heap: the one it stored, else computed once from its pages. */
function baseMap(base: BaseChain, name: string): MapSource {
  const stored = storedMap(base.state, name);
  return stored ? { map: stored } : { layers: base.histories.get(name) ?? [] };
}

/**
 * A heap ships the pages that changed since the base, by LSN or by content
 * (see `writeDelta`). A heap the base does not have, or one that shrank,
 * ships whole: page deltas cannot shrink a file for the reference's restore.
 */
async function fileChange(file: SourceFile, base: BaseChain, staging: string, token?: number): Promise<FileChange> {
  const baseLen = base.state.lengths.get(file.name);
  if (!file.paged) return wholeChange(file, base.state, staging, token);
  if (baseLen === undefined || file.size < baseLen) {
    const copy = await native.copyHashed(file.path, join(staging, file.name), true, mapPath(staging, file), token);
    const change = { Whole: { name: file.name, len: copy.len, blake3_hex: copy.blake3Hex } };
    return {
      change,
      maxPageLsn: copy.maxPageLsn,
      entry: contentsEntry(file.name, copy.len, copy.map ?? copy.blake3Hex),
    };
  }
  const delta = join(staging, `${file.name}.delta`);
  const result = await native.writeDelta(
    file.path,
    delta,
    base.state.sourceLsn,
    baseMap(base, file.name),
    mapPath(staging, file),
    token,
  );
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
  return { change, maxPageLsn: result.maxPageLsn, entry: contentsEntry(file.name, file.size, result.map) };
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
  const chain = await baseChain(base);
  return cancellable(options.signal, (cancel) =>
    withBackupSource(dataDir, liveServerFor(chain.state, options.server), dirname(resolve(dest)), (source, online) => {
      if (online) options.onOnline?.(online);
      assertSameLineage(
        chain.state.sync?.identity,
        source.sync,
        'sync identity changed between base and incremental backup',
      );
      return buildAtomically(dest, 'backup', async (staging) => {
        const changes = await forEachFile(source, options, cancel, (f) => fileChange(f, chain, staging, cancel.token));
        await assertUnchanged(source);
        // May be below the base's: powdb-storage 0.4.7 lowers its LSN when the table
        // holding the highest one is dropped. Content maps still catch every change.
        const sourceLsn = maxOf([source.catalogLsn, ...changes.map((c) => c.maxPageLsn)]);
        const manifest: IncrementManifest = {
          format_version: FORMAT_VERSION,
          created_unix_secs: nowSecs(),
          base_source_lsn: chain.state.sourceLsn,
          source_lsn: sourceLsn,
          catalog_version: manifestCatalogVersion(source.catalogVersion),
          ...sourceSyncBlock(source, sourceLsn, catalogHash(changes.map((c) => c.entry))),
          changed: changes.flatMap((c) => (c.change ? [c.change] : [])),
        };
        await finish(
          staging,
          manifest,
          changes.map((c) => c.entry),
          options,
          cancel,
        );
        return manifest;
      });
    }),
  );
}
