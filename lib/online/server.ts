// A live powdb-server, through the native client (crate/src/online_binding.rs
// over crate/src/core/online): the LSN probe, the write freeze and the stage of
// a consistent copy. Every call runs off the JS thread and rejects with a
// BackupError (ERR_SERVER_*, ERR_FREEZE_LOST, ERR_FREEZE_BUDGET, ERR_WAL_OFF).
import { BackupError, withCodes } from '../common/errors.js';
import { addon } from '../native/addon.js';
import type { ServerLogin, ServerProbe, ServerStageOptions, ServerStageReport } from '../native/binding.js';

// The shapes come from the generated binding.d.ts (crate/src/online_binding.rs).
export type {
  ServerLogin,
  ServerProbe,
  ServerStageOptions,
  ServerStageReport,
  ServerSyncStatus,
} from '../native/binding.js';

/** Drops a freeze that was garbage-collected unended, so its connection (and the server's gate) is not held until exit. */
const unended = new FinalizationRegistry<number>((id) => addon.serverFreezeDrop(id));

/** Calls the addon; a refusal of its arguments (thrown at once) rejects like any other failure. */
const call = <T>(native: () => Promise<T>): Promise<T> => withCodes(Promise.resolve().then(native));

/**
 * Connects with `login` (a readwrite or admin login) and reads the server's
 * LSN with a SyncStatus frame. On a server with sync enabled, that request
 * also checkpoints and archives what is not yet archived.
 */
export function serverProbe(login: ServerLogin): Promise<ServerProbe> {
  return call(() => addon.serverProbe(login));
}

/**
 * A write freeze on a live server: an explicit transaction (`begin`) that
 * holds the server's admission gate, so writers, DDL statements, sync
 * requests and checkpoints wait (and fail after the server's
 * POWDB_TX_WAIT_TIMEOUT_MS, 5 s by default) while reads go on.
 *
 * End it with `commit()`, or, when giving up, `drop()`: the connection closes
 * and the server rolls the transaction back. It is never ended with
 * `rollback`, which would make the server reuse the transaction's LSN.
 */
export class ServerFreeze {
  #id: number | undefined;

  private constructor(id: number) {
    this.#id = id;
    unended.register(this, id, this);
  }

  /** Resolves once the server holds its write gate for this freeze (needs a readwrite or admin login). */
  static async begin(login: ServerLogin): Promise<ServerFreeze> {
    return new ServerFreeze(await call(() => addon.serverFreezeBegin(login)));
  }

  /**
   * Ends the freeze with `commit`; resolves to how long it held, from `begin`
   * answered to `commit` answered. Rejects with ERR_FREEZE_LOST when the server
   * had already rolled it back (its lifetime limit POWDB_TX_MAX_LIFETIME_MS, a
   * restart, a lost connection): writers may have run, so nothing copied under
   * it may be kept.
   */
  async commit(): Promise<{ heldMs: number }> {
    const id = this.#take();
    if (id === undefined) throw new BackupError('ERR_INVALID_ARG', 'this freeze has already ended');
    return call(() => addon.serverFreezeCommit(id));
  }

  /** Gives the freeze up without committing (the server rolls it back); a no-op once ended. */
  drop(): void {
    const id = this.#take();
    if (id !== undefined) addon.serverFreezeDrop(id);
  }

  /** The native id, once: a freeze ends one way only. */
  #take(): number | undefined {
    const id = this.#id;
    this.#id = undefined;
    unended.unregister(this);
    return id;
  }
}

/**
 * Stages a consistent copy of `dataDir`, the data directory the server at
 * `login` serves (on this host), into `staging`, an empty directory: its heaps
 * copied page by page without a freeze, then, under a write freeze of
 * milliseconds, its `wal.log` and small files. The engine's normal open of
 * `staging` recovers it (WAL replay, index rebuild). Nothing is written into
 * `dataDir`. On failure `staging` holds a partial copy, to be removed.
 */
export function serverStage(
  dataDir: string,
  staging: string,
  login: ServerLogin,
  options?: ServerStageOptions,
): Promise<ServerStageReport> {
  return call(() => addon.serverStage(dataDir, staging, login, options));
}
