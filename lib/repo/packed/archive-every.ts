// archive --every: continuous archiving of a live, sync-enabled powdb-server.
// At each interval a SyncStatus request makes the server archive the WAL it
// has not archived yet (a checkpoint into a retained segment, under its
// gate), then the new segments go into the repository (packed/archive.ts).
// A point-in-time restore of the live server so loses at most about one
// interval. Sync is never enabled here: that needs the server stopped.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackupError, toBackupError } from '../../common/errors.js';
import { walNative } from '../../native/wal.js';
import type { ArchiveEveryOptions, ArchiveEveryResult, ArchiveRound } from '../archive-round.js';
import { archive } from './archive.js';
import type { PackedContext } from './context.js';

/** Failures no later round can cure: the loop stops on them. */
const FATAL = new Set([
  'ERR_SERVER_AUTH',
  'ERR_SERVER_ROLE',
  'ERR_NOT_SYNC_ENABLED',
  'ERR_SYNC_IDENTITY',
  'ERR_BAD_SEGMENT',
  'ERR_REPO_CLOSED',
  'ERR_INTEGRITY',
]);

/**
 * Archives `dataDir`'s WAL every `everyMs` until `signal` aborts (then
 * resolves, after the round under way stopped cleanly). The first round must
 * succeed, so a wrong address, login or repository fails at once; later
 * failures (a server restarting, a network blip) are reported and retried.
 */
export async function archiveEvery(
  repo: PackedContext,
  dataDir: string,
  options: ArchiveEveryOptions,
): Promise<ArchiveEveryResult> {
  const total: ArchiveEveryResult = { rounds: 0, failed_rounds: 0, segments: 0, bytes: 0n };
  const overflow = overflowWatch(dataDir);
  const slow = slowServerWatch(options.everyMs);
  while (!options.signal?.aborted) {
    const started = Date.now();
    const round = await oneRound(repo, dataDir, options, total.rounds + 1);
    if (!round) break; // stopped during the round
    total.rounds += 1;
    total.last = round;
    total.segments += round.archived.length;
    total.bytes += round.archived.reduce((sum, a) => sum + a.bytes, 0n);
    if (round.error) {
      total.failed_rounds += 1;
      if (total.rounds === 1 || FATAL.has(round.error.code))
        throw new BackupError(round.error.code, round.error.message);
    }
    options.onRound?.(round);
    await overflow.check(round.archived_through);
    slow.check(round.server_ms);
    // Start to start, but a pause at least as long as the round: the server's checkpoints then never take
    // more than half its time (writers wait while one runs).
    const pause = Math.max(started + options.everyMs - Date.now(), round.ms);
    await sleep(pause, undefined, { signal: options.signal }).catch(() => {});
  }
  return total;
}

/** One round; undefined when `signal` stopped it (nothing half-done is left). */
async function oneRound(
  repo: PackedContext,
  dataDir: string,
  options: ArchiveEveryOptions,
  n: number,
): Promise<ArchiveRound | undefined> {
  const began = Date.now();
  const round: ArchiveRound = { round: n, asked_at: new Date(began).toISOString(), archived: [], ms: 0 };
  let failure: unknown;
  try {
    const result = await archive(repo, dataDir, {
      signal: options.signal,
      lockWaitMs: options.lockWaitMs ?? Math.max(1000, options.everyMs),
      ...(options.server ? { server: options.server, serverMayFail: true } : {}),
    });
    round.server_lsn = result.server?.lsn;
    round.server_ms = result.server?.ms;
    // A server that is down (restarting) still left segments behind when it stopped: they were copied.
    if (result.server?.error) failure = new BackupError(result.server.error.code, result.server.error.message);
    round.archived = result.archived;
    round.archived_through = result.ranges.at(-1)?.end_lsn;
    if (round.server_lsn !== undefined && round.archived_through !== undefined) {
      round.behind_lsn = round.server_lsn > round.archived_through ? round.server_lsn - round.archived_through : 0n;
    }
    if (result.new_gap) {
      process.emitWarning(
        `the archive of ${dataDir} has a new gap: ${result.gaps.map((g) => `no LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}`).join(', ')}; points inside it cannot be restored`,
        'PowdbBackupWarning',
      );
    }
  } catch (err) {
    failure = err;
  }
  if (failure !== undefined) {
    if (options.signal?.aborted) return undefined;
    const e = toBackupError(failure);
    round.error = { code: e.code, message: e.message };
  }
  round.ms = Date.now() - began;
  return round;
}

/**
 * Warns once when the live `wal.log` holds an overflow record (a value over
 * about 4 KiB): powdb-sync 0.29 cannot archive it, so the server's archive
 * stops there, and its next failed statement leaves the server unusable.
 */
function overflowWatch(dataDir: string) {
  let warned = false;
  return {
    async check(archivedThrough: bigint | undefined): Promise<void> {
      if (warned) return;
      const found = await walNative.overflowRecord(join(dataDir, 'wal.log')).catch(() => null);
      if (!found) return;
      warned = true;
      process.emitWarning(
        `${join(dataDir, 'wal.log')} holds a value too large to store inline (WAL record type ${found.kind} at LSN ${found.lsn}). ` +
          `PowDB 0.29's sync cannot archive it, so archived history stops at LSN ${archivedThrough ?? 'none'}, and the ` +
          "server's next failed statement will leave it unusable until .powdb-sync/identity.json is removed. " +
          'Delete that row or store the value smaller, and keep taking backups; see "Continuous archiving" in docs/online.md',
        'PowdbBackupWarning',
      );
    },
  };
}

/** A server answering slower than this holds its writers near their 5 s wait limit during each round. */
const SLOW_SERVER_MS = 2500;

/** Warns once when the server's archive (a checkpoint under its gate) takes long enough to fail writers. */
function slowServerWatch(everyMs: number) {
  let warned = false;
  return {
    check(serverMs: number | undefined): void {
      if (warned || serverMs === undefined || serverMs < SLOW_SERVER_MS) return;
      warned = true;
      process.emitWarning(
        `the server took ${(serverMs / 1000).toFixed(1)} s to archive (a checkpoint, during which its writers wait, and fail ` +
          `after 5 s): archive less often than every ${everyMs / 1000} s, or when the server is quieter`,
        'PowdbBackupWarning',
      );
    },
  };
}
