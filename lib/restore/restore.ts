import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { chainState, finalFiles, readChain, storedMap, type Chain, type ChainState } from '../chain/chain.js';
import { cancellable, type Cancellation } from '../common/abort.js';
import { crashPoint } from '../common/crashpoint.js';
import { native } from '../native/core.js';
import { DEFAULT_CONCURRENCY, mapLimit } from '../common/pool.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import { buildAtomically } from '../common/staging.js';
import { applySyncMode, assertSyncModeFits, type SyncMode, type SyncOutcome } from '../source/sync.js';
import { BackupError } from '../common/errors.js';
import { chainFiles, isFreshDestination, restoreInPlace, type DeltaSummary } from './inplace.js';
import {
  assertTableRestoreFits,
  restoreTables,
  tableChoices,
  type TableOptions,
  type TableRestoreSummary,
  type TableSource,
} from './tables.js';
import { mergeTables } from './merge.js';
import { listTables, type ListOptions, type TablesInfo } from './tables-list.js';
import { dumpTable, type DumpOptions, type DumpResult } from './dump.js';

/** Options of `restore` and `restoreChain`: concurrency, progress, abort signal, sync mode. */
export interface RestoreOptions extends OperationOptions, TableOptions {
  /**
   * What to do with the sync identity of a backup of a sync-enabled
   * directory: `strip` (default) restores a plain database, `preserve`
   * keeps the identity (disaster recovery of the same lineage), `fork` gives
   * the copy a new one. Every mode checks `catalog.bin` against the backup's sync block.
   */
  syncMode?: SyncMode;
  /**
   * Restore into an existing data directory of the same database, rewriting
   * only what differs (see lib/restore/inplace.ts); an absent or empty `dest` gets a
   * plain restore. `force` allows a destination that is not a PowDB data directory.
   */
  delta?: boolean;
  force?: boolean;
}

/** What a restore laid down, and the LSN the restored directory is at. */
export interface RestoreResult {
  dest: string;
  /** Files in the restored directory and their total size. */
  files: number;
  bytes: bigint;
  /** Increments applied on top of the full backup. */
  increments: number;
  /** The LSN the restored directory is at. */
  sourceLsn: bigint;
  /** Present when the backup was of a sync-enabled directory, or a mode other than strip was asked. */
  sync?: SyncOutcome;
  /** A delta restore: what it compared, rewrote and removed. */
  delta?: DeltaSummary;
  /** A table restore (`tables`): what it restored and left out. `files` and `bytes` are then the result's. */
  tables?: TableRestoreSummary;
}

/** Refuses what a delta restore cannot do: write a sync identity (it touches nothing but durable files). */
export function assertDeltaFits(options: RestoreOptions): void {
  if (options.syncMode !== undefined && options.syncMode !== 'strip') {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `--delta restores durable files only; --sync-mode ${options.syncMode} needs a restore into an empty directory`,
    );
  }
}

/** Builds every file of the result from its history, files in parallel. */
async function layDown(
  chain: Chain,
  state: ChainState,
  staging: string,
  options: RestoreOptions,
  cancel: Cancellation,
): Promise<void> {
  const files = finalFiles(chain, state);
  const total = [...state.lengths.values()].reduce((a, b) => a + b, 0n);
  const progress = new Progress('restore', files.length, total, options.onProgress, cancel.token);
  await mapLimit(files, options.concurrency ?? DEFAULT_CONCURRENCY, async ([name, layers]) => {
    cancel.check();
    progress.fileStarted(name, state.lengths.get(name) ?? 0n);
    await native.restoreFile(join(staging, name), layers, storedMap(state, name), cancel.token);
    progress.fileDone(name, state.lengths.get(name) ?? 0n);
    crashPoint('file-done');
  });
}

/**
 * Restores a full backup and then each increment in order into `dest`
 * (absent or empty). Every manifest and every chain link is checked before
 * a byte is written; every file and delta is verified against its BLAKE3;
 * each page of the result is written once (newest delta first); the result
 * appears at `dest` in one rename, or not at all. Passing a
 * prefix of a chain restores the database as of that increment.
 */
export async function restoreChain(
  fullDir: string,
  incrementDirs: readonly string[],
  dest: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const chain = await readChain(fullDir, incrementDirs);
  const state = chainState(chain);
  assertSyncModeFits(state.sync, options.syncMode ?? 'strip');
  const choices = tableChoices(options);
  if (choices) {
    assertTableRestoreFits(options);
    const source = chainSource(chain, state);
    const tables = options.into
      ? await mergeTables(
          dest,
          choices,
          options,
          (stage) => restoreTables(source, stage, choices, options),
          // A WAL with records may change the catalog: only a checkpointed moment's is the one merged.
          (state.lengths.get('wal.log') ?? 0n) <= 8n ? source : undefined,
        )
      : await restoreTables(source, dest, choices, options);
    return {
      dest,
      ...(await resultSize(dest)),
      increments: chain.increments.length,
      sourceLsn: state.sourceLsn,
      tables,
    };
  }
  const base = {
    dest,
    files: state.lengths.size,
    bytes: [...state.lengths.values()].reduce((a, b) => a + b, 0n),
    increments: chain.increments.length,
    sourceLsn: state.sourceLsn,
  };
  if (options.delta && !(await isFreshDestination(dest))) {
    assertDeltaFits(options);
    const delta = await restoreInPlace(dest, chainFiles(chain, state), options);
    const sync = await applySyncMode(dest, state.sync, 'strip');
    return { ...base, ...(sync ? { sync } : {}), delta };
  }
  const sync = await cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'restore', async (staging) => {
      await layDown(chain, state, staging, options, cancel);
      cancel.check();
      return applySyncMode(staging, state.sync, options.syncMode ?? 'strip');
    }),
  );
  return { ...base, ...(sync ? { sync } : {}) };
}

/** The chain's newest moment as a table restore's source: each file rebuilt from its layers, under any name. */
function chainSource(chain: Chain, state: ChainState): TableSource {
  const layers = new Map(finalFiles(chain, state));
  return {
    files: [...layers.keys()].map((name) => ({ name, len: state.lengths.get(name) ?? 0n })),
    sync: state.sync,
    async write(files, token) {
      await mapLimit(files, DEFAULT_CONCURRENCY, (f) =>
        native.restoreFile(f.dest, layers.get(f.name)!, storedMap(state, f.name), token),
      );
    },
  };
}

/** The tables of a directory chain's newest moment (see tables-list.ts). */
export async function chainTables(
  fullDir: string,
  incrementDirs: readonly string[],
  options: ListOptions = {},
): Promise<TablesInfo & { lsn: bigint }> {
  const chain = await readChain(fullDir, incrementDirs);
  const state = chainState(chain);
  return { ...(await listTables(chainSource(chain, state), options)), lsn: state.sourceLsn };
}

/** Dumps one table of a directory chain's newest moment (see dump.ts). */
export async function chainDump(
  fullDir: string,
  incrementDirs: readonly string[],
  options: DumpOptions,
): Promise<DumpResult & { lsn: bigint }> {
  const chain = await readChain(fullDir, incrementDirs);
  const state = chainState(chain);
  return { ...(await dumpTable(chainSource(chain, state), options)), lsn: state.sourceLsn };
}

/** The files of a restored directory and their total size. */
export async function resultSize(dir: string): Promise<{ files: number; bytes: bigint }> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile());
  const sizes = await Promise.all(entries.map(async (e) => BigInt((await stat(join(dir, e.name))).size)));
  return { files: entries.length, bytes: sizes.reduce((a, b) => a + b, 0n) };
}

/** Restores a full backup into `dest` (absent or empty); see `restoreChain`. */
export function restore(backupDir: string, dest: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  return restoreChain(backupDir, [], dest, options);
}
