import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';

// The PowDB engine linked into the addon (crate/src/engine_binding.rs). Types
// come from the generated binding.d.ts.
export type { FinalizedCopy, FinalizedTable, TableRows } from './binding.js';
import type { TableRows } from './binding.js';

/** The engine's own work on a data directory, each rejecting with a BackupError. */
export const engineNative = {
  /**
   * Recovers a staged online copy in place (the engine replays its WAL and rebuilds its indexes), checkpoints and
   * verifies it; with `expectedRows` (counts read under the write freeze) every table's count must match.
   */
  finalize: (staged: string, expectedRows?: TableRows[]) => withCodes(addon.finalizeStagedCopy(staged, expectedRows)),
};
