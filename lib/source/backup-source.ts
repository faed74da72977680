// What a backup reads: a stopped data directory as it is, or, with a live
// server, a copy of it staged while the server runs (a write freeze of
// milliseconds) and recovered by the engine before anything is stored. Both
// backup formats read through here; the source they record stays the live
// directory.
import { tmpdir } from 'node:os';
import { BackupError, toBackupError } from '../common/errors.js';
import { withScratchDir } from '../common/staging.js';
import { stageLive, type LiveServer, type OnlineReport } from '../online/live-copy.js';
import { withDataDir, type DataDirSnapshot } from './datadir.js';
import { assertSameLineage, readSyncIdentity } from './sync.js';

export type { LiveServer, OnlineReport } from '../online/live-copy.js';

/** A live LOCK names how to back up without stopping the server. */
function withOnlineHint(err: unknown, dataDir: string): unknown {
  const e = toBackupError(err);
  if (e.code !== 'ERR_LOCKED' || e.message.includes('powdb-backup itself')) return err;
  return new BackupError(
    'ERR_LOCKED',
    `${e.message}; or back it up while it runs: powdb-backup backup ${dataDir} --server <host:port> --server-user <readwrite login> (docs/online.md)`,
  );
}

/**
 * Runs `work` on a consistent view of `dataDir`: the directory itself when no
 * server is given (it must be stopped), else a copy staged in `server.staging`
 * (default `stagingParent`, else the system's temporary directory) and
 * removed afterwards.
 */
export async function withBackupSource<T>(
  dataDir: string,
  server: LiveServer | undefined,
  stagingParent: string | undefined,
  work: (snapshot: DataDirSnapshot, online?: OnlineReport) => Promise<T>,
): Promise<T> {
  if (!server) {
    return withDataDir(dataDir, (snapshot) => work(snapshot)).catch((err: unknown) => {
      throw withOnlineHint(err, dataDir);
    });
  }
  // The stage leaves `.powdb-sync/` out, so the engine recovers the copy as a plain database; the backup still
  // belongs to the live directory's sync lineage, which a point-in-time restore continues with its archived WAL.
  const identity = await readSyncIdentity(dataDir);
  return withScratchDir(server.staging ?? stagingParent ?? tmpdir(), 'online', async (staging) => {
    const online = await stageLive(dataDir, staging, server);
    assertSameLineage(identity, await readSyncIdentity(dataDir), `${dataDir}: sync identity changed while backing up`);
    return withDataDir(staging, (snapshot) => work({ ...snapshot, sync: identity }, online));
  });
}
