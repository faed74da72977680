import { BackupError } from './errors.js';
import { native } from './native.js';

/**
 * Ties an AbortSignal to a native cancellation token: on abort, every native
 * job of the operation stops at its next chunk, and `check()` stops the
 * operation between files and before it publishes anything.
 */
export class Cancellation {
  readonly token: number | undefined;
  private readonly onAbort = () => {
    if (this.token !== undefined) native.cancel(this.token);
  };

  constructor(private readonly signal?: AbortSignal) {
    this.token = signal ? native.createCancelToken() : undefined;
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.check();
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
