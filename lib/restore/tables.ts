// Table-level restore: some tables of a backup (optionally renamed) into a new data directory. Written once for
// every source (a directory chain, a repository backup, a directory a whole point was restored into): the source
// lays down the files it is asked for under the names it is given, and this module picks them, rewrites the catalog
// and has the linked engine open and verify the result before it is published.
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellable, type Cancellation } from '../common/abort.js';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import { buildAtomically, withScratchDir } from '../common/staging.js';
import { catalogNative, type CatalogLink, type CatalogSubset, type TableChoice } from '../native/catalog.js';
import { engineNative } from '../native/engine.js';
import { applySyncMode, type SyncBlock } from '../source/sync.js';

/** Which tables a restore keeps (API options of `restore`). */
export interface TableOptions {
  /** Restore only these tables (with the catalog, `catalog.lsn`, `views.bin` and the small files). */
  tables?: string[];
  /** New names: `{ Orders: 'OrdersOld' }` restores table Orders as OrdersOld. Each must be among `tables`. */
  rename?: Record<string, string>;
  /**
   * Merge the tables into `dest`, an existing data directory of another database that no live process holds and
   * whose WAL is empty, instead of writing a new one (see lib/restore/merge.ts).
   */
  into?: boolean;
}

/** A table restored, under its name in the backup (`name`) and in the result (`as`), as the engine read it. */
export interface RestoredTable {
  name: string;
  as: string;
  rows: bigint;
  /** Column indexes by column, expression indexes as `expr:<canonical text>`. */
  indexes: string[];
}

/** What a table restore kept and left out. */
export interface TableRestoreSummary {
  tables: RestoredTable[];
  /** Links whose owner or target was not restored (`Owner.name -> Target`). */
  droppedLinks: string[];
  /** Materialized views over a table not restored (or renamed). */
  droppedViews: string[];
  catalogVersion: number;
  /** `whole`: the point was restored whole into a scratch directory beside the destination first (a point between backups). */
  route: 'files' | 'whole';
  /** A merge (`into`): the target, its catalog version (kept), the views added with the tables. */
  merged?: {
    into: string;
    catalogVersion: number;
    views: string[];
    /** This run only finished publishing the merge a killed run of it had planned. */
    finishedRerun: boolean;
  };
}

/** A file of the source, with its length, for progress. */
export interface SourceFile {
  name: string;
  len: bigint;
}

/** What a table restore reads from: the files of one moment, written on request under other names. */
export interface TableSource {
  files: SourceFile[];
  /** The backup's sync block (a sync-enabled source): its catalog hash is checked. */
  sync: SyncBlock | undefined;
  /** Writes each source file `name` to `dest` (durably), checking it against the backup. */
  write(files: { name: string; dest: string }[], token: number | undefined): Promise<void>;
}

/** Files the engine keeps one table's data or index in; every other file of a data directory is kept. */
const TABLE_FILE = /\.(heap|idx|eidx)$/;
/** Rewritten from the source's: the subset's catalog and views. */
const CATALOG_FILES = ['catalog.bin', 'views.bin'];
/** Where the source's catalog waits while the subset is worked out (inside the staging directory). */
const SOURCE_CATALOG = '.powdb-table-catalog';
/** A checkpointed `wal.log`: its 8-byte header alone. */
export const EMPTY_WAL = 8n;

/** The choices `options` make, or undefined for a whole restore; refuses a rename of a table not chosen. */
export function tableChoices(options: TableOptions): TableChoice[] | undefined {
  const renames = new Map(Object.entries(options.rename ?? {}));
  if (options.tables === undefined) {
    if (options.into) throw new BackupError('ERR_INVALID_ARG', 'a merge (into) goes with the tables restored');
    if (renames.size > 0) throw new BackupError('ERR_INVALID_ARG', 'a rename goes with the tables restored');
    return undefined;
  }
  if (options.tables.length === 0) throw new BackupError('ERR_INVALID_ARG', 'no table given to restore');
  for (const [from, to] of renames) {
    if (!options.tables.includes(from)) {
      throw new BackupError('ERR_INVALID_ARG', `rename ${from}=${to}: ${from} is not among the tables restored`);
    }
  }
  return options.tables.map((name) => {
    const renameTo = renames.get(name);
    return renameTo === undefined ? { name } : { name, renameTo };
  });
}

/** Refuses what a table restore cannot do: restore in place, or keep or fork a sync identity. */
export function assertTableRestoreFits(options: { delta?: boolean; syncMode?: string }): void {
  if (options.delta) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      'a table restore writes a new data directory (or merges into one with --into); it cannot go with --delta',
    );
  }
  if (options.syncMode !== undefined && options.syncMode !== 'strip') {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `a table restore makes a new database, never one of the backup's sync lineage: --sync-mode ${options.syncMode} does not apply`,
    );
  }
}

/**
 * Restores the chosen tables of `source` into `dest` (absent or empty), atomically: only their files, the catalog
 * and the small files are written; the catalog is rewritten with the subset; the engine checks it (opening and
 * checkpointing it first where an index file is missing) before the rename that publishes it.
 */
export async function restoreTables(
  source: TableSource,
  dest: string,
  choices: TableChoice[],
  options: OperationOptions,
): Promise<TableRestoreSummary> {
  const wal = source.files.find((f) => f.name === 'wal.log');
  if (wal && wal.len > EMPTY_WAL) {
    // Not a checkpointed moment: the WAL may change any table, so the engine recovers the whole first.
    return viaWholeDirectory(dest, choices, options, (scratch, token) =>
      source.write(
        source.files.map((f) => ({ name: f.name, dest: join(scratch, f.name) })),
        token,
      ),
    );
  }
  return cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'restore', (staging) => buildSubset(source, staging, choices, options, cancel)),
  );
}

/** Lays the subset down in `staging` and has the engine finalize it. */
async function buildSubset(
  source: TableSource,
  staging: string,
  choices: TableChoice[],
  options: OperationOptions,
  cancel: Cancellation,
): Promise<TableRestoreSummary> {
  const names = new Set(source.files.map((f) => f.name));
  const catalogDir = join(staging, SOURCE_CATALOG);
  await mkdir(catalogDir, { mode: 0o700 });
  const catalogs = CATALOG_FILES.filter((n) => names.has(n)).map((name) => ({ name, dest: join(catalogDir, name) }));
  if (!names.has('catalog.bin')) throw new BackupError('ERR_NOT_A_DATA_DIR', 'the backup holds no catalog.bin');
  await source.write(catalogs, cancel.token);
  await applySyncMode(catalogDir, source.sync, 'strip');
  const info = await catalogNative.read(catalogDir);
  const subset = await catalogNative.select(catalogDir, choices);
  const wanted = [
    ...subset.files.filter((f) => f.required || names.has(f.from)),
    ...source.files
      .filter((f) => !TABLE_FILE.test(f.name) && !CATALOG_FILES.includes(f.name))
      .map((f) => ({ from: f.name, to: f.name })),
  ];
  const missing = subset.files.find((f) => f.required && !names.has(f.from));
  if (missing)
    throw new BackupError('ERR_MISSING_FILE', `the backup lists table ${missing.from} but holds no file of it`);
  cancel.check();
  const lengths = new Map(source.files.map((f) => [f.name, f.len]));
  const progress = new Progress(
    'restore',
    wanted.length,
    wanted.reduce((sum, f) => sum + (lengths.get(f.from) ?? 0n), 0n),
    options.onProgress,
    cancel.token,
  );
  for (const f of wanted) progress.fileStarted(f.to, lengths.get(f.from) ?? 0n);
  await source.write(
    wanted.map((f) => ({ name: f.from, dest: join(staging, f.to) })),
    cancel.token,
  );
  for (const f of wanted) progress.fileDone(f.to, lengths.get(f.from) ?? 0n);
  await catalogNative.select(catalogDir, choices, staging);
  await rm(catalogDir, { recursive: true, force: true });
  crashPoint('table-files-written');
  cancel.check();
  // Every index file beside a checkpointed WAL (or none): nothing for the engine to redo or rebuild, so the result
  // is checked without writing to it. Else (an index file the backup lacks, say) the engine's open makes it whole.
  const whole = subset.files.every((f) => names.has(f.from));
  return finalizeSubset(staging, subset, info.version, 'files', whole);
}

/**
 * The engine checks the subset: every page, row, index, link and view. A `whole` subset (every index file beside a
 * checkpointed WAL) is checked as it is, without a write; otherwise the engine opens it first, replays and
 * checkpoints it, rebuilding what is missing. A catalog older than version 5 (PowDB 0.4) is checked on a copy: the
 * 0.29 engine would rewrite its index files in a format the old engine does not read, so the published directory
 * keeps the backup's bytes.
 */
async function finalizeSubset(
  staging: string,
  subset: CatalogSubset,
  version: number,
  route: TableRestoreSummary['route'],
  whole: boolean,
): Promise<TableRestoreSummary> {
  const finalized =
    version < 5
      ? await withScratchDir(join(staging, '..'), 'table-check', async (copy) => {
          await cp(staging, copy, { recursive: true });
          return engineNative.finalize(copy);
        })
      : whole
        ? await engineNative.check(staging)
        : await engineNative.finalize(staging);
  crashPoint('table-finalized');
  const tables = subset.tables.map(({ from, to }) => {
    const found = finalized.tables.find((t) => t.name === to);
    if (!found) throw new BackupError('ERR_ONLINE_FINALIZE', `table ${to} is missing after the engine's open`);
    return { name: from, as: to, rows: found.rows, indexes: found.indexes };
  });
  return {
    tables,
    droppedLinks: subset.droppedLinks.map(linkName),
    droppedViews: subset.droppedViews,
    catalogVersion: finalized.catalogVersion,
    route,
  };
}

function linkName(l: CatalogLink): string {
  return `${l.owner}.${l.name} -> ${l.target}`;
}

/**
 * The simple route for a point between backups (or a moment whose WAL holds records): `restoreWhole` restores the
 * whole point into a scratch directory beside `dest` (once `dest` is known to be free: it is checked first); the
 * engine recovers it there; the chosen tables' files are then moved into the staging directory (no second copy)
 * and finalized like any subset.
 */
export async function viaWholeDirectory(
  dest: string,
  choices: TableChoice[],
  options: OperationOptions,
  restoreWhole: (scratch: string, token: number | undefined) => Promise<unknown>,
): Promise<TableRestoreSummary> {
  const summary = await cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'restore', (staging) =>
      withScratchDir(join(staging, '..'), 'table-point', async (parent) => {
        const whole = join(parent, 'whole');
        await mkdir(whole, { mode: 0o700 });
        await restoreWhole(whole, cancel.token);
        cancel.check();
        const recovered = await engineNative.finalize(whole);
        if (recovered.catalogVersion < 5) {
          throw new BackupError(
            'ERR_UNSUPPORTED_FORMAT',
            `catalog version ${recovered.catalogVersion} (PowDB 0.4): a table restore takes whole backups of it, not points between them`,
          );
        }
        // Only renames from here: the whole restore's progress was the operation's.
        const quiet = { ...options, onProgress: undefined };
        return buildSubset(await directorySource(whole), staging, choices, quiet, cancel);
      }),
    ),
  );
  return { ...summary, route: 'whole' };
}

/** A recovered directory as a source: its files are moved, not copied (it is scratch, on the same file system). */
export async function directorySource(dir: string): Promise<TableSource> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = await Promise.all(
    entries
      .filter((e) => e.isFile())
      .map(async (e) => ({ name: e.name, len: BigInt((await stat(join(dir, e.name))).size) })),
  );
  return {
    files,
    sync: undefined,
    async write(wanted) {
      for (const f of wanted) await rename(join(dir, f.name), f.dest);
    },
  };
}
