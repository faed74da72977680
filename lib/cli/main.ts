// The `powdb-backup` command. Start-up matters (a cron job, a script): only
// commander and the small command modules load up front; each command
// imports what it needs when it runs. One file a command in commands/; what
// they share in kit.ts; what they print in describe.ts.
import { Command, CommanderError } from 'commander';
import { packageVersion } from '../common/version.js';
import { interrupted, loadJson, print } from './kit.js';
import { stopProgressBar, writeOverBar } from './progress-bar.js';
import * as archive from './commands/archive.js';
import * as backup from './commands/backup.js';
import * as expire from './commands/expire.js';
import * as exporting from './commands/export.js';
import * as info from './commands/info.js';
import * as init from './commands/init.js';
import * as key from './commands/key.js';
import * as migrate from './commands/migrate.js';
import * as repair from './commands/repair.js';
import * as restore from './commands/restore.js';
import * as tables from './commands/tables.js';
import * as dumping from './commands/dump.js';
import * as verify from './commands/verify.js';

/** In the order `--help` lists them. */
const COMMANDS = [
  init,
  exporting,
  archive,
  migrate,
  repair,
  key,
  backup,
  restore,
  tables,
  dumping,
  verify,
  info,
  expire,
];

function buildProgram(): Command {
  const program = new Command('powdb-backup')
    .description('Backup, restore and point-in-time recovery for PowDB data directories')
    // Handled in main() before parsing: the native addon loads only to answer it.
    .option('-V, --version', 'print the package and native addon versions')
    .exitOverride()
    .showHelpAfterError("(see 'powdb-backup <command> --help')");
  for (const command of COMMANDS) command.register(program);
  return program;
}

/** Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C). */
const EXIT_INTERRUPTED = 130;
/** How long a Ctrl-C waits for the operation to wind down cleanly before the process ends anyway. */
const ABORT_GRACE_MS = 5000;

/** Codes of a command line asking for something impossible: exit 2, like commander's own. */
const USAGE_CODES = new Set(['ERR_USAGE', 'ERR_INVALID_ARG']);

/** The error on a line of its own (the bar stopped first); with --json, on stdout too. */
function fail(json: boolean, code: string, message: string): void {
  stopProgressBar();
  process.stderr.write(`error [${code}]: ${message}\n`);
  if (json) print(true, { error: { code, message } }, '');
}

/** Runs the CLI; resolves to the exit code (0 ok, 1 failure, 2 usage error, 130 interrupted). */
export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    process.exitCode = 0;
    if (argv.length === 1 && (argv[0] === '-V' || argv[0] === '--version')) {
      const { nativeVersion } = await import('../native/core.js');
      process.stdout.write(`powdb-backup ${packageVersion()} (native addon ${nativeVersion()})\n`);
      return 0;
    }
    await loadJson(argv);
    await buildProgram().parseAsync(argv, { from: 'user' });
    stopProgressBar();
    return Number(process.exitCode ?? 0);
  } catch (err) {
    // With --json, scripts read the failure from stdout too: { "error": { "code", "message" } }.
    if (err instanceof CommanderError) {
      stopProgressBar();
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      if (err.code === 'powdb-backup.usage') process.stderr.write(`${err.message}\n`);
      if (json) print(true, { error: { code: 'ERR_USAGE', message: err.message.replace(/^error: /, '') } }, '');
      return 2;
    }
    const { toBackupError } = await import('../common/errors.js');
    const e = toBackupError(err);
    if (e.code === 'ERR_ABORTED' && interrupted.signal.aborted) {
      fail(json, e.code, 'interrupted (Ctrl-C): stopped cleanly, nothing half-done was left');
      return EXIT_INTERRUPTED;
    }
    if (!USAGE_CODES.has(e.code)) {
      fail(json, e.code, e.message);
      return 1;
    }
    fail(json, e.code, `${e.message} (see 'powdb-backup <command> --help')`);
    return 2;
  }
}

const argv = () => process.argv.slice(2);

/** Ends the process now: a second Ctrl-C, or an operation that did not stop within the grace time. */
function exitInterrupted(): never {
  fail(argv().includes('--json'), 'ERR_ABORTED', 'interrupted (Ctrl-C)');
  process.exit(EXIT_INTERRUPTED);
}

// One Ctrl-C aborts the running operation (it stops at its next chunk and leaves nothing
// half-done, as after a crash); if it has not ended within the grace time, or on a
// second Ctrl-C, the process ends at once: a crash is safe too, a hang is not.
process.on('SIGINT', () => {
  if (interrupted.signal.aborted) exitInterrupted();
  interrupted.abort();
  setTimeout(exitInterrupted, ABORT_GRACE_MS).unref();
});
// Warnings (a hold that could not be written, an unreadable backup) are one line, not Node's format.
process.removeAllListeners('warning');
process.on('warning', (w) => writeOverBar(`warning: ${w.message}\n`));
const code = await main(argv());
process.exitCode = code;
// Nothing of ours stays open after main; if a library's handle did, the process would hang.
setTimeout(() => process.exit(code), 1000).unref();
