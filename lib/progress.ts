/** A file finished: sent after each file of a backup, restore or verify. */
export interface ProgressEvent {
  operation: 'backup' | 'restore' | 'verify';
  /** The file just finished (a manifest name). */
  file: string;
  filesDone: number;
  filesTotal: number;
  bytesDone: bigint;
  bytesTotal: bigint;
}

/** Options every long operation takes. */
export interface OperationOptions {
  /** Files worked on at once; defaults to the number of cores. */
  concurrency?: number;
  /** Called after each file, in completion order; counts only grow and end at the totals. */
  onProgress?: (event: ProgressEvent) => void;
  /**
   * Aborts the operation: running native work stops at its next chunk, and
   * the operation rejects with ERR_ABORTED leaving nothing behind, as after a crash.
   */
  signal?: AbortSignal;
}

/** Counts finished files and bytes and reports them through `onProgress`. */
export class Progress {
  private filesDone = 0;
  private bytesDone = 0n;

  constructor(
    private readonly operation: ProgressEvent['operation'],
    private readonly filesTotal: number,
    private readonly bytesTotal: bigint,
    private readonly onProgress?: OperationOptions['onProgress'],
  ) {}

  fileDone(file: string, bytes: bigint): void {
    this.filesDone += 1;
    this.bytesDone += bytes;
    this.onProgress?.({
      operation: this.operation,
      file,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
    });
  }
}
