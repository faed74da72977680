import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';

// The PowDB engine linked into the addon (crate/src/engine_binding.rs). Types
// come from the generated binding.d.ts.
export type { FinalizedCopy, FinalizedTable, TableRows } from './binding.js';
import type { TableRows } from './binding.js';

/** How a staged copy is recovered (see `finalize`). */
export type FinalizeRoute = 'engine' | 'redo' | 'auto';

/** The engine's own work on a data directory, each rejecting with a BackupError. */
export const engineNative = {
  /**
   * Recovers a staged online copy in place, checkpoints and verifies it; with `expectedRows` (counts read under the
   * write freeze) every table's count must match. `engine`: the engine's open replays the WAL and rebuilds the index
   * files (memory like a server's); `redo`: our redo in bounded memory, index files left for the engine's first
   * open; `auto` (default): redo above 64 MiB of heaps.
   */
  finalize: (staged: string, expectedRows?: TableRows[], route?: FinalizeRoute) =>
    withCodes(addon.finalizeStagedCopy(staged, expectedRows, route)),
  /**
   * Checks a table restore's result, a checkpointed directory of a backup's heaps and index files beside a rewritten
   * catalog, without writing to it: the engine's read-only open, every page and row, links, views, each index file
   * with as many entries as rows with a value. A WAL holding records is refused: such a directory needs `finalize`.
   */
  check: (dir: string) => withCodes(addon.checkRestoredCopy(dir)),
};
