/** Stable error codes. I/O failures use the errno name (`ENOENT`, `EACCES`, ...). */
export type BackupErrorCode =
  | 'ERR_INTEGRITY'
  | 'ERR_CHAIN_BROKEN'
  // No longer raised: content maps make an increment exact whatever its base's LSN.
  | 'ERR_BASE_MISMATCH'
  | 'ERR_DIFFERS'
  | 'ERR_DEST_NOT_EMPTY'
  | 'ERR_BAD_MANIFEST'
  | 'ERR_BAD_DELTA'
  | 'ERR_UNSUPPORTED_FORMAT'
  | 'ERR_NOT_A_DATA_DIR'
  | 'ERR_NOT_A_BACKUP'
  | 'ERR_NOT_CHECKPOINTED'
  | 'ERR_LOCKED'
  // Only an online backup raises it: a stopped sync-enabled directory is backed up with its sync block.
  | 'ERR_SYNC_ENABLED'
  | 'ERR_SYNC_IDENTITY'
  | 'ERR_SYNC_LINEAGE'
  | 'ERR_SYNC_MODE'
  | 'ERR_SOURCE_CHANGED'
  | 'ERR_NOT_PAGED'
  | 'ERR_INVALID_ARG'
  | 'ERR_UNSAFE_PATH'
  | 'ERR_MISSING_FILE'
  | 'ERR_PAGE_CRC'
  | 'ERR_PAGE_LSN'
  | 'ERR_PAGE_FORMAT'
  | 'ERR_CATALOG'
  // A table restore or listing names a table the backup lacks.
  | 'ERR_NO_TABLE'
  // A merge (`restore --table --into`) names a table the target has, or a table the target's catalog version cannot hold.
  | 'ERR_TABLE_EXISTS'
  | 'ERR_CATALOG_VERSION'
  | 'ERR_ABORTED'
  | 'ERR_NOT_A_REPO'
  | 'ERR_REPO_LOCKED'
  | 'ERR_NO_BACKUP'
  | 'ERR_PASSWORD_REQUIRED'
  | 'ERR_BAD_PASSWORD'
  | 'ERR_BAD_KEY_FILE'
  | 'ERR_NOT_ENCRYPTED'
  | 'ERR_NO_KEY'
  | 'ERR_LAST_KEY'
  | 'ERR_STORE_UNREACHABLE'
  | 'ERR_STORE_AUTH'
  | 'ERR_STORE_NO_BUCKET'
  | 'ERR_STORE_DENIED'
  | 'ERR_STORE_THROTTLED'
  | 'ERR_STORE'
  | 'ERR_ARCHIVE_GAP'
  | 'ERR_BEYOND_ARCHIVE'
  | 'ERR_REPLAY_UNSAFE'
  | 'ERR_SYNC_OVERFLOW'
  | 'ERR_NOT_SYNC_ENABLED'
  | 'ERR_BAD_SEGMENT'
  | 'ERR_BAD_WAL'
  | 'ERR_OTHER_DATABASE'
  | 'ERR_LSN_BACKWARDS'
  // A command that picks a backup (newest, LSN, time) of a repository holding several sources, none named.
  | 'ERR_SOURCE_AMBIGUOUS'
  | 'ERR_REPO_CLOSED'
  | 'ERR_USAGE'
  // A live powdb-server (online backup).
  | 'ERR_SERVER_UNREACHABLE'
  | 'ERR_SERVER_TIMEOUT'
  | 'ERR_SERVER_AUTH'
  | 'ERR_SERVER_ROLE'
  | 'ERR_SERVER_BUSY'
  | 'ERR_SERVER_PROTOCOL'
  | 'ERR_SERVER_QUERY'
  | 'ERR_FREEZE_LOST'
  | 'ERR_ONLINE_FINALIZE'
  | 'ERR_FREEZE_BUDGET'
  | 'ERR_SERVER_MISMATCH'
  | 'ERR_WAL_OFF'
  | (string & {});

/** Every failure of this package: a message naming the file and a stable `code`. */
export class BackupError extends Error {
  readonly code: BackupErrorCode;

  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupError';
    this.code = code;
  }
}

// The native layer reports `CODE: message`; Node's fs errors carry `code`.
const NATIVE_PREFIX = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/;

/** Turns any thrown value into a BackupError, keeping a code it already has. */
export function toBackupError(err: unknown): BackupError {
  if (err instanceof BackupError) return err;
  if (err instanceof Error) {
    const match = NATIVE_PREFIX.exec(err.message);
    if (match) return new BackupError(match[1]!, match[2]!, { cause: err });
    const code = (err as NodeJS.ErrnoException).code;
    return new BackupError(typeof code === 'string' ? code : 'EIO', err.message, { cause: err });
  }
  return new BackupError('EIO', String(err));
}

/** Awaits `work`, rethrowing its failure as a BackupError. */
export async function withCodes<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw toBackupError(err);
  }
}
