// `dump`: the rows of one table of a backup or point in time, as JSON Lines or CSV, to a file or a descriptor
// (stdout). The table alone (its heap and the catalog) is laid down in a scratch directory; at a moment whose WAL
// holds records (a point between backups) the whole moment is restored there and recovered by the engine first.
// The Rust core then reads the heap as the engine does and writes the rows; a file appears whole or not at all.
import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { cancellable, type Cancellation } from '../common/abort.js';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import { STAGING_MARK } from '../common/names.js';
import { Progress, type OperationOptions } from '../common/progress.js';
import { fsyncPath, withScratchDir } from '../common/staging.js';
import { catalogNative } from '../native/catalog.js';
import { dumpNative } from '../native/dump.js';
import { engineNative } from '../native/engine.js';
import { applySyncMode } from '../source/sync.js';
import { EMPTY_WAL, type TableSource } from './tables.js';

export const DUMP_FORMATS = ['jsonl', 'csv'] as const;
export type DumpFormat = (typeof DUMP_FORMATS)[number];

export interface DumpOptions extends OperationOptions {
  /** The table whose rows are written (a name the backup lacks is ERR_NO_TABLE). */
  table: string;
  /** `jsonl` (default): one JSON object per row; `csv`: RFC 4180 with a header row. */
  format?: DumpFormat;
  /** A new file: written beside it under a temporary name and renamed into place once complete. */
  output?: string;
  /** Without `output`, the descriptor written to (default 1, stdout); it is not closed. */
  fd?: number;
}

export interface DumpResult {
  table: string;
  format: DumpFormat;
  rows: bigint;
  bytes: bigint;
  /** The file written (absolute), when the dump went to one. */
  output?: string;
  /** `whole`: the moment was restored whole and recovered by the engine first (its WAL held records). */
  route: 'files' | 'whole';
}

/**
 * Dumps `options.table` of `source`. `restoreWhole`, when given, restores the moment whole into a directory (a
 * repository's point between backups, replayed from its WAL archive); otherwise the source's own files are.
 */
export async function dumpTable(
  source: TableSource,
  options: DumpOptions,
  restoreWhole?: (dir: string, token: number | undefined) => Promise<unknown>,
): Promise<DumpResult> {
  const format = options.format ?? 'jsonl';
  if (!DUMP_FORMATS.includes(format)) {
    throw new BackupError('ERR_INVALID_ARG', `unknown dump format ${JSON.stringify(format)}: jsonl or csv`);
  }
  if (options.output !== undefined && options.fd !== undefined) {
    throw new BackupError('ERR_INVALID_ARG', 'a dump goes to a file or a descriptor, not both');
  }
  const output = options.output === undefined ? undefined : resolve(options.output);
  if (output) await refuseExisting(output);
  // Scratch beside the output (the user picked that file system), else in the system temp directory.
  const parent = output ? dirname(output) : tmpdir();
  return cancellable(options.signal, (cancel) =>
    withScratchDir(parent, 'dump', async (scratch) => {
      const wal = source.files.find((f) => f.name === 'wal.log');
      const whole = restoreWhole !== undefined || (wal !== undefined && wal.len > EMPTY_WAL);
      const { dir, progress, heapBytes } = whole
        ? await recoverWhole(source, scratch, options, cancel, restoreWhole)
        : await tableAlone(source, scratch, options, cancel);
      // The rows pass counts as reading the heap once more.
      const pass = `${options.table} rows`;
      progress.fileStarted(pass, heapBytes);
      const summary = output
        ? await dumpToFile(dir, options.table, format, output, cancel)
        : await dumpNative.table(dir, options.table, format, { fd: options.fd ?? 1 }, cancel.token);
      progress.fileDone(pass, heapBytes);
      return {
        table: options.table,
        format,
        rows: BigInt(summary.rows),
        bytes: BigInt(summary.bytes),
        ...(output ? { output } : {}),
        route: whole ? 'whole' : 'files',
      };
    }),
  );
}

/** Where the table is at rest, and the progress of the dump so far (over its heap's bytes). */
interface LaidDown {
  dir: string;
  progress: Progress;
  heapBytes: bigint;
}

/** Lays down `catalog.bin` and the table's heap alone (index files are not needed to read rows). */
async function tableAlone(
  source: TableSource,
  dir: string,
  options: DumpOptions,
  cancel: Cancellation,
): Promise<LaidDown> {
  const table = options.table;
  const names = new Set(source.files.map((f) => f.name));
  if (!names.has('catalog.bin')) throw new BackupError('ERR_NOT_A_DATA_DIR', 'the backup holds no catalog.bin');
  await source.write([{ name: 'catalog.bin', dest: join(dir, 'catalog.bin') }], cancel.token);
  await applySyncMode(dir, source.sync, 'strip'); // checks the catalog against a sync block
  const subset = await catalogNative.select(dir, [{ name: table }]);
  const heap = subset.files.find((f) => f.required)!;
  if (!names.has(heap.from)) {
    throw new BackupError('ERR_MISSING_FILE', `the backup lists table ${table} but holds no file of it`);
  }
  cancel.check();
  const heapBytes = source.files.find((f) => f.name === heap.from)!.len;
  const progress = new Progress('dump', 2, 2n * heapBytes, options.onProgress, cancel.token);
  progress.fileStarted(heap.from, heapBytes);
  await source.write([{ name: heap.from, dest: join(dir, heap.from) }], cancel.token);
  progress.fileDone(heap.from, heapBytes);
  return { dir, progress, heapBytes };
}

/** Restores the whole moment into `scratch/whole` and has the engine recover it (WAL replay, checkpoint). */
async function recoverWhole(
  source: TableSource,
  scratch: string,
  options: DumpOptions,
  cancel: Cancellation,
  restoreWhole?: (dir: string, token: number | undefined) => Promise<unknown>,
): Promise<LaidDown> {
  const whole = join(scratch, 'whole');
  if (restoreWhole) await restoreWhole(whole, cancel.token);
  else {
    await mkdir(whole, { mode: 0o700 });
    await source.write(
      source.files.map((f) => ({ name: f.name, dest: join(whole, f.name) })),
      cancel.token,
    );
  }
  cancel.check();
  await engineNative.finalize(whole);
  // A table the point lacks has no heap: the native dump then says which tables it has.
  const named = /^[A-Za-z_][A-Za-z0-9_]*$/.test(options.table);
  const heap = named ? await stat(join(whole, `${options.table}.heap`)).catch(() => undefined) : undefined;
  const heapBytes = BigInt(heap?.size ?? 0);
  return { dir: whole, progress: new Progress('dump', 1, heapBytes, options.onProgress, cancel.token), heapBytes };
}

/** Writes the rows to a temporary file beside `output`, then links it into place (never over an existing file). */
async function dumpToFile(dir: string, table: string, format: DumpFormat, output: string, cancel: Cancellation) {
  const temp = join(
    dirname(output),
    `${STAGING_MARK}${basename(output)}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  try {
    const summary = await dumpNative.table(dir, table, format, { newFile: temp }, cancel.token);
    cancel.check();
    crashPoint('staging-synced');
    await link(temp, output).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') throw exists(output);
      throw err;
    });
    crashPoint('renamed');
    await unlink(temp);
    await fsyncPath(dirname(output));
    return summary;
  } finally {
    await rm(temp, { force: true });
  }
}

async function refuseExisting(output: string): Promise<void> {
  const found = await lstat(output).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (found) throw exists(output);
}

function exists(output: string): BackupError {
  return new BackupError(
    'ERR_DEST_NOT_EMPTY',
    `dump output ${output} exists; a dump never overwrites a file: give a new file name, or remove it first`,
  );
}
