import { withCodes } from './errors.js';
import { loadAddon } from './loader.js';

/** A checked powdb-sync retained segment (crate/src/wal_binding.rs). */
export interface SegmentInfo {
  startLsn: bigint;
  endLsn: bigint;
  units: number;
  /** 32 lowercase hex digits. */
  databaseId: string;
  primaryGeneration: bigint;
  walFormatVersion: number;
  catalogVersion: number;
  len: bigint;
  blake3Hex: string;
  /** The highest LSN after which no transaction is open, if any. */
  lastBoundary?: bigint | null;
}

export interface WalWritten {
  cutLsn: bigint;
  units: bigint;
  bytes: bigint;
  /** The first `alter table add column` replayed, if any. */
  addColumnLsn?: bigint | null;
}

interface WalAddon {
  inspectRetainedSegment(path: string, cancel?: number): Promise<SegmentInfo>;
  walCut(
    segments: string[],
    afterLsn: bigint,
    targetLsn: bigint,
    cancel?: number,
  ): Promise<{ lsn: bigint; addColumn?: bigint | null; safe: bigint }>;
  writeReplayWal(
    segments: string[],
    afterLsn: bigint,
    cutLsn: bigint,
    out: string,
    cancel?: number,
  ): Promise<WalWritten>;
  walOverflowRecord(path: string): Promise<{ lsn: bigint; kind: number } | null>;
}

const addon = loadAddon<WalAddon>();

/** Retained segments and point-in-time WALs, each rejecting with a BackupError. */
export const walNative = {
  inspectSegment: (path: string, cancel?: number) => withCodes(addon.inspectRetainedSegment(path, cancel)),
  cut: (segments: string[], afterLsn: bigint, targetLsn: bigint, cancel?: number) =>
    withCodes(addon.walCut(segments, afterLsn, targetLsn, cancel)),
  writeWal: (segments: string[], afterLsn: bigint, cutLsn: bigint, out: string, cancel?: number) =>
    withCodes(addon.writeReplayWal(segments, afterLsn, cutLsn, out, cancel)),
  overflowRecord: (path: string) => withCodes(addon.walOverflowRecord(path)),
};
