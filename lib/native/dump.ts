import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';

// One table's rows written by the Rust core (crate/src/dump_binding.rs): rows never pass through JS.
export type { DumpOutput, DumpSummary } from './binding.js';
import type { DumpOutput } from './binding.js';

export const dumpNative = {
  /**
   * Writes every row of `table` of the data directory `dir` (checkpointed or recovered by the engine) as `format`
   * to `output`: a new file (fsynced, published by the caller) or a descriptor (never closed).
   */
  table: (dir: string, table: string, format: string, output: DumpOutput, token: number | undefined) =>
    withCodes(addon.dumpTable(dir, table, format, output, token)),
};
