// The shapes of `archive` and of continuous archiving (archive --every):
// options, each round's report and the summary when it stops. A leaf, so that the
// repository's base class can name them without importing the loop.
import type { OperationOptions } from '../common/progress.js';
import type { ServerLogin } from '../online/server.js';
import type { ArchiveResult } from './archive.js';

/** One archive run (`archive`). */
export interface ArchiveOptions extends OperationOptions {
  /** How long to wait for another writer of the repository (default 60 s). */
  lockWaitMs?: number;
  /** The live server serving the directory: asked first to archive what it has not (a readwrite login). */
  server?: ServerLogin;
  /** A server that cannot be asked (down, restarting) is reported in the result rather than thrown. */
  serverMayFail?: boolean;
}

export interface ArchiveEveryOptions extends OperationOptions {
  /** Start-to-start time between rounds, in ms; each round is followed by a pause at least as long as it took. */
  everyMs: number;
  /**
   * The server serving the directory (a readwrite login: the sync protocol needs one). Without it a
   * round copies only what the server archived at its own checkpoints (rollbacks, restarts).
   */
  server?: ServerLogin;
  /** How long a round waits for another writer of the repository (default: the interval, at least 1 s). */
  lockWaitMs?: number;
  /** Each round, as it ends. */
  onRound?: (round: ArchiveRound) => void;
}

/** One round: the server asked to archive, then the new segments stored. */
export interface ArchiveRound {
  round: number;
  /** When the server was asked (ISO 8601); what it had committed by then is archived when the round succeeds. */
  asked_at: string;
  /** The server's highest LSN once it archived (its `remote_lsn`); absent without a server. */
  server_lsn?: bigint;
  /** How long the server took to answer (its checkpoint into a retained segment, while its writers wait). */
  server_ms?: number;
  /** The newest LSN the repository archives for this database after the round. */
  archived_through?: bigint;
  /** LSNs the server wrote that the repository does not archive yet (an open transaction holds them back). */
  behind_lsn?: bigint;
  archived: ArchiveResult['archived'];
  /** A round that failed: the loop goes on, and the next round retries. */
  error?: { code: string; message: string };
  ms: number;
}

export interface ArchiveEveryResult {
  rounds: number;
  failed_rounds: number;
  segments: number;
  bytes: bigint;
  last?: ArchiveRound;
}
