// What the commands share: the common options, output (text or JSON), usage
// errors, long operations (progress bar, Ctrl-C), and opening a repository
// with its password (file, environment, or a prompt on a terminal).
import { CommanderError, type Command } from 'commander';
import { givenPassword, promptHidden } from './password.js';
import type { OperationOptions } from '../common/progress.js';
import type { Repository } from '../repo/repository.js';
import type { SyncMode } from '../source/sync.js';

/** The repository modules, loaded when a command first needs them (start-up stays small). */
export const repositories = () => import('../repo/repository.js');

/** Options every command takes. */
export interface Common {
  json?: boolean;
  quiet?: boolean;
}

/** Options of every command that opens a repository. */
export interface RepoOpts {
  passwordFile?: string;
  /** An object store's endpoint, for s3:// repositories. */
  endpoint?: string;
  /** An object store's requests in flight. */
  concurrency?: number;
}

/** The restore modes of a sync-enabled backup (lib/source/sync.ts SYNC_MODES, not loaded up front). */
export const SYNC_MODES: SyncMode[] = ['strip', 'preserve', 'fork'];

/** A repeatable option's values. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `--json` and `--quiet`. */
export const common = (cmd: Command) =>
  cmd.option('--json', 'print one JSON document on stdout (LSNs exact)').option('--quiet', 'no progress bar');

/** A usage error: exit 2, one line and a pointer to --help. */
export function usage(message: string): never {
  throw new CommanderError(2, 'powdb-backup.usage', `error: ${message} (see 'powdb-backup <command> --help')`);
}

/** JSON output (lossless u64s) is loaded only when --json asks for it. */
let formatJson: ((value: unknown) => string) | undefined;
let formatJsonLine: ((value: unknown) => string) | undefined;
export async function loadJson(argv: string[]): Promise<void> {
  if (argv.includes('--json')) ({ formatJson, formatJsonLine } = await import('../common/json.js'));
}

/**
 * JSON keys are snake_case in every command, as in manifests and the catalog
 * (`source_lsn`); the camelCase keys some commands printed before 0.1.1
 * (`sourceLsn`) stay beside them as aliases for one release.
 */
function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const converted = snakeKeys(v);
    out[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = converted;
    out[key] = converted;
  }
  return out;
}

/** A command's result: `value` as one JSON document with --json, else `line`. */
export function print(json: boolean, value: unknown, line: string): void {
  process.stdout.write(json ? `${formatJson!(snakeKeys(value))}\n` : `${line}\n`);
}

/** One event of a command that runs until stopped: with --json, one JSON document a line. */
export function printLine(value: unknown): void {
  process.stdout.write(`${formatJsonLine!(snakeKeys(value))}\n`);
}

/** Ctrl-C aborts the running operation cleanly (nothing half-written is left); main.ts handles the signal. */
export const interrupted = new AbortController();

/** Options for every long operation: a progress bar (on a terminal, without --json or --quiet) and the Ctrl-C signal. */
export async function operation(opts: Common): Promise<OperationOptions> {
  const bar = opts.json || opts.quiet || !process.stderr.isTTY;
  return {
    onProgress: bar ? undefined : await (await import('./progress-bar.js')).progressBar(),
    signal: interrupted.signal,
  };
}

const PASSWORD_HELP =
  'with --repo: read the repository password from this file (else POWDB_BACKUP_PASSWORD, else a prompt)';
const ENDPOINT_HELP = 'with an s3:// repository: the endpoint URL (else AWS_ENDPOINT_URL, else AWS S3)';
const CONCURRENCY_HELP = 'with an s3:// repository: requests in flight at once, 1-16 (default 4)';

function concurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 16)
    throw Object.assign(new Error(`--concurrency ${value}: give a whole number from 1 to 16`), {
      code: 'ERR_INVALID_ARG',
    });
  return n;
}

/** Where an object store is and how hard to drive it. */
const storeFlags = (cmd: Command) =>
  cmd.option('--endpoint <url>', ENDPOINT_HELP).option('--concurrency <n>', CONCURRENCY_HELP, concurrency);
const store = (opts: RepoOpts) => ({ endpoint: opts.endpoint, concurrency: opts.concurrency });

/** `--password-file`, `--endpoint` and `--concurrency` for every command that opens a repository. */
export const repoAccess = (cmd: Command) => storeFlags(cmd.option('--password-file <file>', PASSWORD_HELP));

/** Opens a repository; an encrypted one without a given password asks on the terminal. */
export async function openRepository(dir: string, opts: RepoOpts): Promise<Repository> {
  const [{ Repository }, { toBackupError }] = await Promise.all([repositories(), import('../common/errors.js')]);
  const password = await givenPassword(opts.passwordFile, 'POWDB_BACKUP_PASSWORD');
  try {
    return await Repository.open(dir, { password, ...store(opts) });
  } catch (err) {
    if (toBackupError(err).code !== 'ERR_PASSWORD_REQUIRED' || password !== undefined || !process.stdin.isTTY)
      throw err;
    return Repository.open(dir, { password: await promptHidden(`password for ${dir}: `), ...store(opts) });
  }
}

/** A new password: from the file, the environment variable, or asked twice on the terminal. */
export async function newPassword(file: string | undefined, envName: string, what: string): Promise<string> {
  const given = await givenPassword(file, envName);
  if (given !== undefined) return given;
  const first = await promptHidden(`${what}: `);
  if ((await promptHidden(`${what} again: `)) !== first) {
    throw Object.assign(new Error('the passwords do not match'), { code: 'ERR_INVALID_ARG' });
  }
  return first;
}

/** How a new repository is made: `init` and `migrate`. */
export type InitOpts = Common & RepoOpts & { compression: string; encrypt?: boolean; format?: string };

export const initOptions = (cmd: Command) =>
  storeFlags(
    cmd
      .option('--compression <method>', 'zstd[:level] (default zstd, level 3) or none', 'zstd')
      .option('--encrypt', 'encrypt everything with a key wrapped by a password (argon2id, XChaCha20-Poly1305)')
      .option('--password-file <file>', 'with --encrypt: the password (else POWDB_BACKUP_PASSWORD, else a prompt)'),
  );

export const initWith = async (opts: InitOpts) => ({
  ...store(opts),
  compression: opts.compression,
  encrypt: Boolean(opts.encrypt),
  password: opts.encrypt
    ? await newPassword(opts.passwordFile, 'POWDB_BACKUP_PASSWORD', 'new repository password')
    : undefined,
});
