// The flags of a live server: for an online backup or archiving, which server serves the data directory,
// as whom to log in (the password from a file, POWDB_SERVER_PASSWORD or a
// prompt, kept apart from a repository's --password-file), how long the
// write freeze may last, and where the live copy is staged.
import { Option, type Command } from 'commander';
import { givenPassword, promptHidden } from './password.js';
import { usage } from './kit.js';

export interface ServerOpts {
  server?: string;
  serverUser?: string;
  serverPasswordFile?: string;
  freezeBudget?: number;
  staging?: string;
  finalize?: 'engine' | 'redo' | 'auto';
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `2s`, `1.5s`, `5m`, `1h` or a bare number of milliseconds. */
export function parseMillis(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) usage(`${value}: give a duration such as 500ms, 2s or 5m`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
}

/** `host:port` or `[v6]:port`. */
export function parseServer(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) usage(`--server ${value}: give host:port, e.g. 127.0.0.1:5433`);
  return { host: (m[1] ?? m[2])!, port };
}

/** `--server`, `--server-user` and `--server-password-file`; `what` says what the server is for. */
export const loginFlags = (cmd: Command, what: string) =>
  cmd
    .option('--server <host:port>', what)
    .option(
      '--server-user <name>',
      'with --server: a readwrite login (a write freeze and the sync protocol both need one)',
    )
    .option(
      '--server-password-file <file>',
      "with --server: the login's password (else POWDB_SERVER_PASSWORD, else a prompt)",
    );

export const serverFlags = (cmd: Command) =>
  loginFlags(cmd, 'back up while this running powdb-server serves <dataDir> (a write freeze of milliseconds)')
    .addOption(
      new Option(
        '--freeze-budget <duration>',
        'with --server: the longest write freeze allowed (default 2s)',
      ).argParser(parseMillis),
    )
    .option('--staging <dir>', 'with --server: where the live copy is staged (default: beside the destination)')
    .addOption(
      new Option(
        '--finalize <route>',
        "with --server: recover the copy by our redo in bounded memory (index files rebuilt at the first open after a restore), or by the engine (index files kept, memory like the server's); auto: redo above 64 MiB",
      ).choices(['auto', 'redo', 'engine']),
    );

/** The live server (to back up from, or to archive), or undefined for a stopped data directory. */
export async function serverLogin(opts: ServerOpts) {
  if (!opts.server) {
    for (const [flag, given] of [
      ['--server-user', opts.serverUser],
      ['--server-password-file', opts.serverPasswordFile],
      ['--freeze-budget', opts.freezeBudget],
      ['--staging', opts.staging],
      ['--finalize', opts.finalize],
    ] as const) {
      if (given !== undefined) usage(`${flag} goes with --server`);
    }
    return undefined;
  }
  const { host, port } = parseServer(opts.server);
  const user = opts.serverUser;
  const password =
    (await givenPassword(opts.serverPasswordFile, 'POWDB_SERVER_PASSWORD')) ??
    (process.stdin.isTTY ? await promptHidden(`password of ${user ?? 'the server'} at ${opts.server}: `) : undefined);
  return {
    host,
    port,
    user,
    password,
    freezeBudgetMs: opts.freezeBudget,
    staging: opts.staging,
    finalize: opts.finalize,
  };
}
