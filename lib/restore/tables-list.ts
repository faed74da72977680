// A look inside a backup without restoring it (`powdb-backup tables`): its tables with their columns, indexes,
// links and views, read from the backup's catalog.bin and views.bin alone (fetched into a scratch directory), and
// each file's size from the backup's own records. Row counts are not recorded anywhere: with `rows`, the tables are
// restored into the scratch directory and counted by the engine (as costly as restoring them).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withScratchDir } from '../common/staging.js';
import { catalogNative, type CatalogLink, type CatalogView } from '../native/catalog.js';
import type { OperationOptions } from '../common/progress.js';
import { restoreTables, type TableSource } from './tables.js';

/** What `tables` shows of one table. */
export interface TableListing {
  name: string;
  columns: { name: string; type: string; required: boolean; default: boolean; autoIncrement: boolean }[];
  /** Column indexes by column, expression indexes by canonical text; `bytes` of their file in the backup (0: none). */
  indexes: { key: string; unique: boolean; expression: boolean; file: string; bytes: bigint }[];
  /** `<name>.heap` and its size in the backup. */
  heap: string;
  heapBytes: bigint;
  /** Rows as the engine counted them (with `rows`, or at a point between backups). */
  rows?: bigint;
}

/** Every table of one backup or point, and its links and views. */
export interface TablesInfo {
  catalogVersion: number;
  tables: TableListing[];
  links: CatalogLink[];
  views: CatalogView[];
}

export interface ListOptions extends OperationOptions {
  /** Only these tables (a name the backup lacks is ERR_NO_TABLE). */
  tables?: string[];
  /** Count each listed table's rows with the engine (restores them into a scratch directory first). */
  rows?: boolean;
}

/** Lists the tables of `source`; `counted` gives row counts already known (a point recovered whole). */
export async function listTables(
  source: TableSource,
  options: ListOptions = {},
  counted?: Map<string, bigint>,
): Promise<TablesInfo> {
  return withScratchDir(tmpdir(), 'tables', async (dir) => {
    const names = new Set(source.files.map((f) => f.name));
    const lengths = new Map(source.files.map((f) => [f.name, f.len]));
    const catalogs = ['catalog.bin', 'views.bin'].filter((n) => names.has(n));
    await source.write(
      catalogs.map((name) => ({ name, dest: join(dir, name) })),
      undefined,
    );
    const info = await catalogNative.read(dir);
    const chosen = options.tables ?? info.tables.map((t) => t.name);
    // Refuses a name the catalog lacks, listing those it has.
    await catalogNative.select(
      dir,
      chosen.map((name) => ({ name })),
    );
    const rows = counted ?? (options.rows ? await countRows(source, chosen, join(dir, 'rows'), options) : undefined);
    const tables = info.tables
      .filter((t) => chosen.includes(t.name))
      .map((t) => ({
        name: t.name,
        columns: t.columns.map((c) => ({
          name: c.name,
          type: c.typeName,
          required: c.required,
          default: c.hasDefault,
          autoIncrement: c.autoIncrement,
        })),
        indexes: t.indexes.map((x) => ({ ...x, bytes: lengths.get(x.file) ?? 0n })),
        heap: t.heap,
        heapBytes: lengths.get(t.heap) ?? 0n,
        ...(rows?.has(t.name) ? { rows: rows.get(t.name)! } : {}),
      }));
    const shown = (table: string) => chosen.includes(table);
    return {
      catalogVersion: info.version,
      tables,
      links: info.links.filter((l) => shown(l.owner) || shown(l.target)),
      views: info.views.filter((v) => shown(v.name) || v.dependsOn.some(shown)),
    };
  });
}

/** The engine's row count of each table, from a table restore of them into `dest` (scratch). */
async function countRows(
  source: TableSource,
  tables: string[],
  dest: string,
  options: OperationOptions,
): Promise<Map<string, bigint>> {
  const summary = await restoreTables(
    source,
    dest,
    tables.map((name) => ({ name })),
    { ...(options.signal ? { signal: options.signal } : {}) },
  );
  return new Map(summary.tables.map((t) => [t.name, t.rows]));
}
