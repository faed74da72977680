// An online backup's source: the data directory a live server serves, staged
// into a scratch directory with a write freeze of milliseconds (the core's
// stage: heaps copied page by page while the server runs, the WAL and small
// files under the freeze), then recovered, checkpointed and verified by the
// engine linked in the core. What is backed up is that recovered copy.
import { engineNative, type FinalizeRoute } from '../native/engine.js';
import { serverStage, type ServerLogin } from './server.js';

/** A live server to back a data directory up from, and how. */
export interface LiveServer extends ServerLogin {
  /** The longest write freeze allowed, in ms (default 2000); a stage that cannot keep to it fails. */
  freezeBudgetMs?: number;
  /** Where the copy is staged (default: beside the destination, or the system's temporary directory). */
  staging?: string;
  /**
   * How the staged copy is recovered: `redo` in bounded memory (the backup holds no index file; the engine rebuilds
   * them at its first open after a restore), `engine` (index files kept; the engine's open needs memory like the
   * server's), `auto` (default): redo above 64 MiB of heaps.
   */
  finalize?: FinalizeRoute;
}

/** What an online backup's stage and finalize did (reported beside the backup). */
export interface OnlineReport {
  /** The write freeze kept: from `begin` answered to `commit` answered. */
  freeze_ms: number;
  /** When it began (ISO 8601): the backup holds every commit acknowledged before. */
  frozen_at: string;
  /** The longest freeze of all attempts. */
  longest_freeze_ms: number;
  attempts: number;
  /** Why earlier attempts were given up (a checkpoint or DDL during the copy, a lost freeze). */
  retries: string[];
  /** Whether the kept freeze also read again the heaps that changed since their copy (its window broke and they were small, or the last resort). */
  refreshed_under_freeze: boolean;
  heap_pages: bigint;
  /** Pages copied again because they changed while the server ran. */
  pages_recopied: bigint;
  torn_rereads: bigint;
  wal_bytes: bigint;
  /** How the copy was recovered: `redo` leaves the index files to the engine's first open after a restore. */
  finalize: 'engine' | 'redo';
  /** The engine's LSN once the copy was recovered. */
  source_lsn: bigint;
  /** Each table's rows in the recovered copy. */
  tables: { name: string; rows: bigint }[];
}

/** Stages `dataDir`, which the server `server` serves, into the empty directory `staging`, and recovers it there. */
export async function stageLive(dataDir: string, staging: string, server: LiveServer): Promise<OnlineReport> {
  const { freezeBudgetMs, staging: _where, finalize, ...login } = server;
  const stage = await serverStage(dataDir, staging, login, { budgetMs: freezeBudgetMs });
  const copy = await engineNative.finalize(staging, undefined, finalize);
  return {
    freeze_ms: stage.freezeMs,
    frozen_at: new Date(stage.frozenAtUnixMs).toISOString(),
    longest_freeze_ms: stage.longestFreezeMs,
    attempts: stage.attempts,
    retries: stage.retries,
    refreshed_under_freeze: stage.refreshedUnderFreeze,
    heap_pages: stage.heapPages,
    pages_recopied: stage.pagesRecopied,
    torn_rereads: stage.tornRereads,
    wal_bytes: stage.walBytes,
    finalize: copy.route === 'redo' ? 'redo' : 'engine',
    source_lsn: copy.maxLsn,
    tables: copy.tables.map((t) => ({ name: t.name, rows: t.rows })),
  };
}
