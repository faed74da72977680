import { setTimeout as sleep } from 'node:timers/promises';
import { BackupError } from '../common/errors.js';
import { repoNative, type HoldInfo, type HoldKind } from '../native/repo.js';

/** Who holds a repository, as `info` reports it. */
export interface RepositoryHold {
  kind: HoldKind;
  operation: string;
  host: string;
  pid: number;
  /** When its lease ends unless renewed (ISO 8601). */
  until: string;
}

export const describeHold = (h: HoldInfo): RepositoryHold => ({
  kind: h.kind,
  operation: h.operation,
  host: h.host,
  pid: h.pid,
  until: new Date(h.expiresUnixSecs * 1000).toISOString(),
});

/** Withdraws a hold; a failure is a warning (its lease lapses). */
export async function releaseHold(handle: number, location: string, operation: string, owner: string): Promise<void> {
  await repoNative.holdRelease(handle, owner).catch((err: unknown) => {
    process.emitWarning(
      `${location}: could not withdraw the ${operation}'s hold (${(err as Error).message}); it lapses within 5 minutes`,
      'PowdbBackupWarning',
    );
  });
}

/** Leases (the writer lock's, a hold's) last 300 s (crate/src/core/repo/lease.rs); renewed every minute. */
export const LEASE_RENEW_MS = 60_000;

/**
 * Runs `attempt` again while it fails with ERR_REPO_LOCKED, once a second,
 * until `waitMs` have passed (0: once): how an operation waits for the
 * holders it conflicts with (`--lock-wait`).
 */
export async function waitingForLock<T>(waitMs: number, attempt: () => Promise<T>): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const left = until - Date.now();
      if ((err as BackupError).code !== 'ERR_REPO_LOCKED' || left <= 0) throw err;
      await sleep(Math.min(1000, left));
    }
  }
}

/** A repository this process cannot write to: a read-only mount or credentials, a full disk. */
const CANNOT_WRITE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'ERR_STORE_DENIED']);

/**
 * Runs `work` while renewing a lease every LEASE_RENEW_MS. With `strict`, a
 * renewal that failed fails the work (another may have taken the lease);
 * otherwise the lease is left to run out.
 */
export async function whileRenewing<T>(
  renew: () => Promise<void>,
  work: () => Promise<T>,
  strict: boolean,
): Promise<T> {
  let lost: { err: unknown } | undefined;
  const timer = setInterval(() => void renew().catch((err: unknown) => (lost ??= { err })), LEASE_RENEW_MS);
  try {
    const result = await work();
    if (strict && lost) throw lost.err;
    return result;
  } finally {
    clearInterval(timer);
  }
}

/**
 * Runs `work` under a hold (crate/src/core/repo/holds.rs): readers
 * (`shared`) go on side by side and beside backups, while expire
 * (`exclusive`) removes nothing as long as any of them reads. A conflict fails
 * at once with ERR_REPO_LOCKED naming the other side. A reader that cannot
 * publish its hold (see CANNOT_WRITE) reads without one, with a warning: a
 * prune meanwhile could make it fail, never return wrong data.
 */
export async function withHold<T>(
  handle: number,
  location: string,
  kind: HoldKind,
  operation: string,
  work: () => Promise<T>,
): Promise<T> {
  let owner: string;
  try {
    owner = await repoNative.holdAcquire(handle, kind, operation);
  } catch (err) {
    const e = err as BackupError;
    if (kind === 'exclusive' || !CANNOT_WRITE.has(e.code)) throw err;
    process.emitWarning(
      `${location}: ${operation} reads without a hold, as it cannot write one (${e.code}: ${e.message}); an expire running meanwhile could make it fail`,
      'PowdbBackupWarning',
    );
    return work();
  }
  // A renewal that fails leaves the lease to run out: then an expire may go on, and this read fail cleanly.
  try {
    return await whileRenewing(() => repoNative.holdRenew(handle, owner), work, false);
  } finally {
    await releaseHold(handle, location, operation, owner);
  }
}
