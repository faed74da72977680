// `--lock-wait <duration>`: how long a writer waits for those it conflicts
// with (a backup for an expire, repair or key removal; an expire for running
// backups and readers) before ERR_REPO_LOCKED.
import { Option } from 'commander';
import { usage } from './kit.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `5m`, `1h`, or a bare number of seconds. */
export function parseLockWait(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(value.trim());
  if (!m) usage(`--lock-wait ${value}: give a duration such as 30s, 5m or 1h (a bare number is seconds)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
}

/** The option, in milliseconds; `byDefault` says what happens without it. */
export const lockWaitOption = (byDefault: string) =>
  new Option(
    '--lock-wait <duration>',
    `wait this long (e.g. 30s, 5m) for a writer this one conflicts with; ${byDefault}`,
  ).argParser(parseLockWait);
