// archive of a format-2 repository: the retained WAL segments of a
// sync-enabled data directory stored as chunks, beside backups and other
// archive runs (a shared hold); it waits for an expire or repair.
import { cancellable } from '../../common/abort.js';
import { BackupError, toBackupError } from '../../common/errors.js';
import { repoNative } from '../../native/repo.js';
import { serverProbe, type ServerLogin } from '../../online/server.js';
import { assertNoOverflow, heldByLiveProcess, readSyncIdentity } from '../../source/sync.js';
import type { ArchiveResult } from '../archive.js';
import type { ArchiveOptions } from '../archive-round.js';
import type { PackedContext } from './context.js';

/**
 * Copies the retained WAL segments of the sync-enabled `dataDir` that the
 * repository does not have yet (see WalArchive.archive). Needs no lock on
 * the data directory; runs beside backups, and waits up to `lockWaitMs`
 * (default 60 s) for a writer that holds the repository alone. Fails with
 * ERR_SYNC_OVERFLOW, after archiving, when `wal.log` holds a record that
 * powdb-sync cannot archive (history stops there). With `server`, the live
 * server serving `dataDir` is first asked, under the lock, to archive what it
 * has not (a SyncStatus request: a checkpoint into a retained segment).
 */
export async function archive(
  repo: PackedContext,
  dataDir: string,
  options: ArchiveOptions = {},
): Promise<ArchiveResult> {
  const identity = await readSyncIdentity(dataDir);
  if (!identity) {
    throw new BackupError(
      'ERR_NOT_SYNC_ENABLED',
      `${dataDir} is not sync-enabled: it keeps no retained WAL to archive. Enable it once with its server stopped ` +
        '(powdb-cli sync-enable); this tool never enables it on a live server',
    );
  }
  const result = await repo.alongside('archive', options.lockWaitMs ?? 60_000, () =>
    cancellable(options.signal, async (cancel) => {
      const server = options.server && (await askServer(options.server, options.serverMayFail));
      await repoNative.refreshToWrite(repo.handle.handle);
      try {
        const stored = await repo.wal.archive(dataDir, identity, cancel.token);
        return server ? { ...stored, server } : stored;
      } catch (err) {
        repoNative.abandon(repo.handle.handle);
        throw err;
      }
    }),
  );
  // The WAL of a running server is its own (never read it); a stopped one says why history stopped.
  if (!(await heldByLiveProcess(dataDir))) await assertNoOverflow(dataDir, result.ranges.at(-1)?.end_lsn);
  return result;
}

/** Asks the live server to archive what it has not (a SyncStatus request); its failure throws unless `mayFail`. */
async function askServer(login: ServerLogin, mayFail = false): Promise<NonNullable<ArchiveResult['server']>> {
  const began = Date.now();
  try {
    return { lsn: (await serverProbe(login)).remoteLsn, ms: Date.now() - began };
  } catch (err) {
    if (!mayFail) throw err;
    const e = toBackupError(err);
    return { ms: Date.now() - began, error: { code: e.code, message: e.message } };
  }
}
