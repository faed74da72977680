import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';

// PowDB's catalog read and filtered without the engine (crate/src/catalog_binding.rs). Types come from the
// generated binding.d.ts.
export type {
  CatalogColumn,
  CatalogIndex,
  CatalogInfo,
  CatalogLink,
  CatalogMerge,
  CatalogSubset,
  CatalogTable,
  CatalogView,
  KeptTable,
  SubsetFile,
  TableChoiceArg as TableChoice,
} from './binding.js';
import type { TableChoiceArg } from './binding.js';

/** The catalog's operations, each rejecting with a BackupError. */
export const catalogNative = {
  /** What `<dir>/catalog.bin` (and `views.bin`) hold: tables, columns, indexes, links, views. */
  read: (dir: string) => withCodes(addon.readCatalog(dir)),
  /**
   * The tables `choices` keep from the catalog in `sourceDir`, with the files they own and the links and views kept
   * or dropped; with `destDir`, also writes the subset's `catalog.bin` (and `views.bin`) there. A name the catalog
   * lacks rejects with `ERR_NO_TABLE`.
   */
  select: (sourceDir: string, choices: TableChoiceArg[], destDir?: string) =>
    withCodes(addon.selectTables(sourceDir, choices, destDir)),
  /** Checks a merge target's catalog version (`ERR_UNSUPPORTED_FORMAT` when a merge does not write it); resolves to it. */
  checkMergeTarget: (dir: string) => withCodes(addon.checkMergeTarget(dir)),
  /**
   * Merges the catalog of `stageDir` (a finalized table restore) into `targetDir`'s, writing the result's
   * `catalog.bin` (and `views.bin`, `catalog.lsn`) into `outDir`; neither directory is changed.
   */
  merge: (stageDir: string, targetDir: string, outDir: string) =>
    withCodes(addon.mergeCatalogs(stageDir, targetDir, outDir)),
};
