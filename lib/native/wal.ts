import { withCodes } from '../common/errors.js';
import { addon } from './addon.js';

// The types come from the generated binding.d.ts (crate/src/wal_binding.rs).
export type { SegmentInfo, WalWritten } from './binding.js';

/** Retained segments and point-in-time WALs, each rejecting with a BackupError. */
export const walNative = {
  inspectSegment: (path: string, cancel?: number) => withCodes(addon.inspectRetainedSegment(path, cancel)),
  cut: (segments: string[], afterLsn: bigint, targetLsn: bigint, cancel?: number) =>
    withCodes(addon.walCut(segments, afterLsn, targetLsn, cancel)),
  writeWal: (segments: string[], afterLsn: bigint, cutLsn: bigint, out: string, cancel?: number) =>
    withCodes(addon.writeReplayWal(segments, afterLsn, cutLsn, out, cancel)),
  overflowRecord: (path: string) => withCodes(addon.walOverflowRecord(path)),
};
