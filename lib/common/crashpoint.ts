// Fault injection for the crash-safety suite: POWDB_BACKUP_CRASH_AT=<point>:<n>
// kills this process with SIGKILL the n-th time it reaches <point> (1-based);
// <point>:<n>:stop stops it there with SIGSTOP instead (SIGCONT resumes it).
// The native core reads the same variable for its own points
// (crate/src/core/crashpoint.rs). Unset (always, outside the fault suites) it
// costs one comparison.
const [point, nth, how] = (process.env.POWDB_BACKUP_CRASH_AT ?? '').split(':');
let seen = 0;

/** Named boundaries where a crash must leave nothing half-done. */
export type CrashPoint =
  | 'lock-acquired'
  | 'file-done'
  | 'packs-committed'
  | 'manifest-written'
  | 'staging-synced'
  | 'renamed'
  | 'expire-renamed'
  | 'archive-packs-committed'
  | 'archive-record-written'
  | 'delta-marked'
  | 'delta-catalog-removed'
  | 'delta-files-done'
  | 'delta-catalog-written'
  | 'table-files-written'
  | 'table-finalized'
  | 'merge-planned'
  | 'merge-file-moved'
  | 'merge-files-published'
  | 'merge-catalog-published'
  | 'merge-plan-removed';

export function crashPoint(name: CrashPoint): void {
  if (name === point && ++seen === Number(nth)) process.kill(process.pid, how === 'stop' ? 'SIGSTOP' : 'SIGKILL');
}
