import { native } from '../native/core.js';

/**
 * Progress of a backup, restore or verify: sent after each file, and inside
 * files at least every 8 MiB processed. Counts never decrease, never exceed
 * the totals, and the last event is exactly at the totals.
 */
export interface ProgressEvent {
  operation: 'backup' | 'restore' | 'verify' | 'dump';
  /**
   * After a file: the file just finished (a manifest name). Inside files: a
   * file still in progress (the oldest started, when several are). A
   * repository verify reads packs, named `data/`.
   */
  file: string;
  /** Files finished (an event inside files does not count the file it names). */
  filesDone: number;
  filesTotal: number;
  /** Bytes of the finished files, plus (inside files) the bytes processed so far of those in progress. */
  bytesDone: bigint;
  bytesTotal: bigint;
}

/** Options every long operation takes. */
export interface OperationOptions {
  /** Files worked on at once; defaults to the number of cores. */
  concurrency?: number;
  /**
   * Called after each file, in completion order, and inside files at least
   * every 8 MiB processed; counts only grow and end at the totals.
   */
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Aborts the operation: running native work stops at its next chunk, and
   * the operation rejects with ERR_ABORTED leaving nothing behind, as after a crash.
   */
  signal?: AbortSignal;
}

/**
 * Counts finished files and bytes and reports them through `onProgress`;
 * with the operation's native token, also the bytes its running jobs have
 * processed, each time the native side has processed another 8 MiB.
 */
export class Progress {
  private filesDone = 0;
  private finishedBytes = 0n;
  /** bytesDone of the last event. */
  private reported = 0n;
  /** Files whose native work is running, with their sizes, oldest first. */
  private readonly running: { file: string; bytes: bigint }[] = [];
  private runningBytes = 0n;
  /** A throw of `onProgress` inside a file, rethrown by the next `fileDone`. */
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly operation: ProgressEvent['operation'],
    private readonly filesTotal: number,
    private readonly bytesTotal: bigint,
    private readonly onProgress?: OperationOptions['onProgress'],
    private readonly token?: number,
  ) {
    if (onProgress && token !== undefined) native.watchProgress(token, () => this.inFiles());
  }

  /** The native work on `file` (of `bytes` bytes) starts. */
  fileStarted(file: string, bytes: bigint): void {
    this.running.push({ file, bytes });
    this.runningBytes += bytes;
  }

  /** `files` files (one unless told) are finished, `bytes` bytes in all. */
  fileDone(file: string, bytes: bigint, files = 1): void {
    if (this.failure) throw this.failure.error;
    const started = this.running.findIndex((r) => r.file === file && r.bytes === bytes);
    if (started >= 0) {
      this.running.splice(started, 1);
      this.runningBytes -= bytes;
    }
    this.filesDone += files;
    this.finishedBytes += bytes;
    this.emit(file, this.finishedBytes > this.reported ? this.finishedBytes : this.reported);
  }

  /** Told by the native side: reports the bytes processed inside the running files. */
  private inFiles(): void {
    const file = this.running[0]?.file;
    if (file === undefined || this.failure || this.filesDone === this.filesTotal || this.token === undefined) return;
    const processed = native.progressBytes(this.token);
    let done = this.finishedBytes + (processed < this.runningBytes ? processed : this.runningBytes);
    if (done > this.bytesTotal) done = this.bytesTotal;
    if (done <= this.reported) return;
    try {
      this.emit(file, done);
    } catch (error) {
      this.failure = { error }; // never thrown on the event loop: the operation fails at its next file
    }
  }

  private emit(file: string, bytesDone: bigint): void {
    this.reported = bytesDone;
    this.onProgress?.({
      operation: this.operation,
      file,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
      bytesDone,
      bytesTotal: this.bytesTotal,
    });
  }
}
