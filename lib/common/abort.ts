import { BackupError } from './errors.js';
import { native } from '../native/core.js';

/**
 * An operation's native token, tied to its AbortSignal: on abort, every native
 * job of the operation stops at its next chunk, and `check()` stops the
 * operation between files and before it publishes anything. The token also
 * counts the bytes its jobs process, for `Progress` (so there is one even
 * without a signal).
 */
export class Cancellation {
  readonly token: number | undefined;
  private readonly onAbort = () => {
    if (this.token !== undefined) native.cancel(this.token);
  };

  constructor(private readonly signal?: AbortSignal) {
    this.check();
    this.token = native.createCancelToken();
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Throws ERR_ABORTED once the signal has fired. */
  check(): void {
    if (this.signal?.aborted) throw new BackupError('ERR_ABORTED', 'the operation was aborted');
  }

  dispose(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.token !== undefined) native.releaseCancelToken(this.token);
  }
}

/** Runs `work` with a Cancellation for `signal`, disposed of afterwards. */
export async function cancellable<T>(
  signal: AbortSignal | undefined,
  work: (c: Cancellation) => Promise<T>,
): Promise<T> {
  const cancellation = new Cancellation(signal);
  try {
    return await work(cancellation);
  } finally {
    cancellation.dispose();
  }
}
