// The repository commands that the plain directory mode does not have:
// init, export, migrate, repair and key management, and opening a repository with
// its password (file, environment, or a prompt on a terminal).
import type { Command } from 'commander';
import { formatBytes, plural } from './format.js';
import { givenPassword, promptHidden } from './password.js';
import type { RepairResult } from './native.js';
import type { OperationOptions } from './progress.js';
import type { Repository } from './repository.js';

/** The repository modules, loaded when a command first needs them (start-up stays small). */
const repositories = () => import('./repository.js');

export interface Common {
  json?: boolean;
  quiet?: boolean;
}

export interface PasswordOpts {
  passwordFile?: string;
  /** An object store's endpoint, for s3:// repositories. */
  endpoint?: string;
  /** An object store's requests in flight. */
  concurrency?: number;
}

export interface CliKit {
  common: (cmd: Command) => Command;
  print: (json: boolean, value: unknown, line: string) => void;
  usage: (message: string) => never;
  operation: (opts: Common) => Promise<OperationOptions>;
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
const store = (opts: PasswordOpts) => ({ endpoint: opts.endpoint, concurrency: opts.concurrency });

/** `--password-file`, `--endpoint` and `--concurrency` for every command that opens a repository. */
export const repoAccess = (cmd: Command) => storeFlags(cmd.option('--password-file <file>', PASSWORD_HELP));

/** Opens a repository; an encrypted one without a given password asks on the terminal. */
export async function openRepository(dir: string, opts: PasswordOpts): Promise<Repository> {
  const [{ Repository }, { toBackupError }] = await Promise.all([repositories(), import('./errors.js')]);
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
async function newPassword(file: string | undefined, envName: string, what: string): Promise<string> {
  const given = await givenPassword(file, envName);
  if (given !== undefined) return given;
  const first = await promptHidden(`${what}: `);
  if ((await promptHidden(`${what} again: `)) !== first) {
    throw Object.assign(new Error('the passwords do not match'), { code: 'ERR_INVALID_ARG' });
  }
  return first;
}

export function repositoryCommands(program: Command, kit: CliKit): void {
  const { common, print, usage, operation } = kit;
  const initOptions = (cmd: Command) =>
    storeFlags(
      cmd
        .option('--compression <method>', 'zstd[:level] (default zstd, level 1) or none', 'zstd')
        .option('--encrypt', 'encrypt everything with a key wrapped by a password (argon2id, XChaCha20-Poly1305)')
        .option('--password-file <file>', 'with --encrypt: the password (else POWDB_BACKUP_PASSWORD, else a prompt)'),
    );
  type InitOpts = Common & PasswordOpts & { compression: string; encrypt?: boolean; format?: string };
  const initWith = async (opts: InitOpts) => ({
    ...store(opts),
    compression: opts.compression,
    encrypt: Boolean(opts.encrypt),
    password: opts.encrypt
      ? await newPassword(opts.passwordFile, 'POWDB_BACKUP_PASSWORD', 'new repository password')
      : undefined,
  });

  common(
    initOptions(
      program
        .command('init')
        .description('create a backup repository (format 2: deduplicated, compressed, optionally encrypted)')
        .argument('<repo>', 'new repository: a directory (absent or empty) or s3://<bucket>/<prefix>')
        .option('--format <n>', 'repository format: 2 (default) or 1 (one reference-format directory per backup)', '2'),
    ).addHelpText(
      'after',
      '\nExamples:\n  powdb-backup init ./backups\n  powdb-backup init ./backups --encrypt --compression zstd:3\n  powdb-backup init s3://my-bucket/powdb --endpoint http://127.0.0.1:8333 --encrypt',
    ),
  ).action(async (repo: string, opts: InitOpts) => {
    if (opts.format !== '1' && opts.format !== '2') usage('--format is 1 or 2');
    const format = opts.format === '1' ? 1 : 2;
    if (format === 1 && (opts.encrypt || opts.compression !== 'zstd'))
      usage('format 1 has no compression or encryption');
    const { Repository, PackedRepository } = await repositories();
    const r = await Repository.init(repo, format === 1 ? { format } : await initWith(opts));
    const how =
      r instanceof PackedRepository ? `, compression ${opts.compression}${r.encrypted ? ', encrypted' : ''}` : '';
    print(Boolean(opts.json), { repo, format }, `initialized repository ${repo} (format ${format}${how})`);
  });

  common(
    repoAccess(
      program
        .command('export')
        .description('write one backup of a repository as a plain reference-format full backup')
        .requiredOption('--repo <repo>', 'the repository')
        .argument('<dest>', 'new backup directory (must not exist or be empty)')
        .option('--as-of <target>', 'a time (ISO 8601), an LSN or a backup id; default the newest'),
    ).addHelpText(
      'after',
      '\nExample:\n  powdb-backup export --repo ./backups ./full-for-reference --as-of 2026-11-23T10:00:00Z',
    ),
  ).action(async (dest: string, opts: Common & PasswordOpts & { repo: string; asOf?: string }) => {
    const repo = await openRepository(opts.repo, opts);
    const r = await repo.export(dest, { ...(await operation(opts)), asOf: opts.asOf });
    const bytes = r.manifest.files.reduce((s, f) => s + f.len, 0n);
    print(
      Boolean(opts.json),
      { id: r.id, dest, manifest: r.manifest },
      `exported ${r.id}: ${plural(r.manifest.files.length, 'file')}, ${formatBytes(bytes)}, source LSN ${r.manifest.source_lsn} -> ${dest}`,
    );
  });

  common(
    repoAccess(
      program
        .command('archive')
        .description(
          "copy a sync-enabled data directory's retained WAL segments that the repository lacks (safe from cron, beside a running server and beside backups)",
        )
        .argument(
          '<dataDir>',
          'the sync-enabled PowDB data directory (only its .powdb-sync/retained/ segments are read)',
        )
        .requiredOption('--repo <repo>', 'the repository (format 2)')
        .option('--lock-wait <seconds>', 'wait this long for another writer of the repository (default 60)', (v) =>
          Number(v),
        ),
    ).addHelpText(
      'after',
      '\nExamples:\n  powdb-backup archive /var/lib/powdb --repo ./backups\n  * * * * * powdb-backup archive /var/lib/powdb --repo s3://bucket/powdb --quiet   (crontab)',
    ),
  ).action(async (dataDir: string, opts: Common & PasswordOpts & { repo: string; lockWait?: number }) => {
    if (opts.lockWait !== undefined && !(opts.lockWait >= 0)) usage('--lock-wait is a number of seconds');
    const repo = await openRepository(opts.repo, opts);
    const r = await repo.archive(dataDir, {
      ...(await operation(opts)),
      ...(opts.lockWait === undefined ? {} : { lockWaitMs: opts.lockWait * 1000 }),
    });
    const stored = r.archived.reduce((sum, a) => sum + a.bytes, 0n);
    const range = (x: { start_lsn: bigint; end_lsn: bigint }) => `${x.start_lsn}-${x.end_lsn}`;
    const line =
      (r.archived.length
        ? `archived ${plural(r.archived.length, 'segment')} (LSNs ${r.archived.map(range).join(', ')}, ${formatBytes(stored)})`
        : 'nothing new to archive') +
      `; the archive holds LSNs ${r.ranges.map(range).join(', ') || 'none'}` +
      r.gaps
        .map((g) => `\nGAP: no archived LSNs ${g.after_lsn + 1n}-${g.next_lsn - 1n}; nothing can be restored inside it`)
        .join('');
    print(Boolean(opts.json), r, line);
    if (r.new_gap) process.exitCode = 1; // a hole in history, new with this run
  });

  common(
    initOptions(
      program
        .command('migrate')
        .description('convert a format-1 repository into a new format-2 repository (the old one is only read)')
        .argument('<from>', 'the format-1 repository')
        .argument('<to>', 'the new repository directory (must not exist or be empty)'),
    ),
  ).action(async (from: string, to: string, opts: InitOpts) => {
    const { migrate } = await import('./migrate.js');
    const r = await migrate(from, to, { ...(await operation(opts)), ...(await initWith(opts)) });
    r.repository.close();
    print(
      Boolean(opts.json),
      { from, to, migrated: r.migrated },
      `migrated ${plural(r.migrated.length, 'backup')} from ${from} to ${to}`,
    );
  });

  common(
    repoAccess(
      program
        .command('repair')
        .description(
          'after verify reports damage: rebuild damaged index objects from the packs, drop damaged and missing chunks from the index (the intact chunks of a damaged pack are kept in new packs), and name the backups that need chunks that are gone; then run a backup to store them again',
        )
        .requiredOption('--repo <repo>', 'the repository'),
    ),
  ).action(async (opts: Common & PasswordOpts & { repo: string }) => {
    const { signal } = await operation(opts);
    const r = await (await openRepository(opts.repo, opts)).repair({ signal });
    print(Boolean(opts.json), r, repairSummary(r));
  });

  const key = program.command('key').description("manage an encrypted repository's passwords");
  common(
    repoAccess(key.command('list').description('list the keys').requiredOption('--repo <repo>', 'the repository')),
  ).action(async (opts: Common & PasswordOpts & { repo: string }) => {
    const keys = await (await openRepository(opts.repo, opts)).listKeys();
    print(Boolean(opts.json), { keys }, keys.map((k) => `${k.current ? '*' : ' '} ${k.id}  ${k.created}`).join('\n'));
  });
  common(
    repoAccess(
      key
        .command('add')
        .description('add a password (the data is not re-encrypted)')
        .requiredOption('--repo <repo>', 'the repository')
        .option('--new-password-file <file>', 'the new password (else POWDB_BACKUP_NEW_PASSWORD, else a prompt)'),
    ),
  ).action(async (opts: Common & PasswordOpts & { repo: string; newPasswordFile?: string }) => {
    const repo = await openRepository(opts.repo, opts);
    const id = await repo.addKey(await newPassword(opts.newPasswordFile, 'POWDB_BACKUP_NEW_PASSWORD', 'new password'));
    print(Boolean(opts.json), { id }, `added key ${id}`);
  });
  common(
    repoAccess(
      key
        .command('remove')
        .description('remove a key (never the last one)')
        .requiredOption('--repo <repo>', 'the repository')
        .argument('<id>', 'the key id (see key list)'),
    ),
  ).action(async (id: string, opts: Common & PasswordOpts & { repo: string }) => {
    await (await openRepository(opts.repo, opts)).removeKey(id);
    print(Boolean(opts.json), { removed: id }, `removed key ${id}`);
  });
}

function repairSummary(r: RepairResult): string {
  const lines: string[] = [];
  if (r.indexesRemoved + r.packsIndexed > 0 || r.packsRemoved > r.packsDamaged) {
    lines.push(
      `removed ${plural(r.indexesRemoved, 'damaged index object')}, indexed ${plural(r.packsIndexed, 'pack')} anew`,
    );
  }
  if (r.packsDamaged > 0) {
    lines.push(
      `${plural(r.packsDamaged, 'damaged or missing pack')} removed from the index and the repository; ` +
        `${plural(r.chunksSalvaged, 'intact chunk')} kept in ${plural(r.packsWritten, 'new pack')}, ${plural(r.chunksLost, 'chunk')} lost`,
    );
  } else if (lines.length === 0) {
    lines.push('nothing was damaged; nothing changed');
  }
  if (r.damageRecordsCleared > 0) lines.push(`cleared ${plural(r.damageRecordsCleared, 'damage record')}`);
  for (const b of r.backups) {
    const files = b.files.map((f) => `${f.name} (${plural(f.chunksMissing, 'chunk')})`).join(', ');
    lines.push(`backup ${b.id} needs chunks that are gone: ${files}`);
  }
  if (r.backups.length > 0) {
    lines.push(
      'these backups are kept: they cannot be restored until a backup of a source that still holds the same content stores those chunks again',
    );
  }
  if (r.chunksLost > 0) lines.push('run a backup now: it stores the lost chunks again from its source');
  return lines.join('\n');
}
