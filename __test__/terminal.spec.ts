// The CLI at a real terminal (a pseudo-terminal, where the progress bar
// draws): one Ctrl-C, or an error once the bar shows, must end the process
// with the error on its own line, never leave it alive.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, cli, fixture, tmp } from './helpers.js';

const RUNNER = join(import.meta.dirname, 'pty-run.py');

interface PtyRun {
  exit: number | null;
  hung: boolean;
  output: string;
}

/** Runs the CLI under a pseudo-terminal; with `interruptAfter`, types Ctrl-C once that text shows. */
function atTerminal(args: string[], options: { interruptAfter?: string; fsizeLimit?: number } = {}): PtyRun {
  const spec = {
    argv: [process.execPath, CLI, ...args],
    interrupt_after: options.interruptAfter ?? null,
    timeout: 20,
    fsize_limit: options.fsizeLimit ?? null,
  };
  return JSON.parse(execFileSync('python3', [RUNNER, JSON.stringify(spec)], { encoding: 'utf8', timeout: 90_000 }));
}

/** The bar's text once it has drawn a first time. */
const BAR = '% | ';

describe('at a terminal', () => {
  it('one Ctrl-C after the progress bar shows ends a backup with ERR_ABORTED, exit 130, and nothing stored', () => {
    const root = tmp();
    const data = join(root, 'data');
    fixture('new', 'bulk', data, '--mib', 48, '--pad', 1000);
    const repo = join(root, 'repo');
    // Level 19 compresses a few MiB a second: the bar shows long before the end.
    expect(cli('init', repo, '--compression', 'zstd:19').code).toBe(0);
    const r = atTerminal(['backup', data, '--repo', repo], { interruptAfter: BAR });
    expect(r.hung, r.output).toBe(false);
    expect(r.output).toContain(BAR);
    expect(r.exit, r.output).toBe(130);
    // The bar is stopped first: the error starts a line of its own.
    expect(r.output).toMatch(/\r?\nerror \[ERR_ABORTED\]: interrupted/);
    expect(cli('info', '--repo', repo).stdout).toMatch(/^no backups yet/);
  });

  it('an error after the progress bar shows ends a restore with the error on its own line', () => {
    const root = tmp();
    const data = join(root, 'data');
    fixture('new', 'bulk', data, '--mib', 48, '--pad', 1000);
    const repo = join(root, 'repo');
    expect(cli('init', repo, '--compression', 'none').code).toBe(0);
    expect(cli('backup', data, '--repo', repo, '--quiet').code).toBe(0);
    const dest = join(root, 'restored');
    // A file size limit makes writes fail (EFBIG) part way through, as a full disk would.
    const r = atTerminal(['restore', '--repo', repo, dest], { fsizeLimit: 24 << 20 });
    expect(r.hung, r.output).toBe(false);
    expect(r.output).toContain(BAR);
    expect(r.exit, r.output).toBe(1);
    expect(r.output).toMatch(/\r?\nerror \[[A-Z0-9_]+\]: .*File too large/);
    expect(existsSync(dest)).toBe(false);
  });
});
