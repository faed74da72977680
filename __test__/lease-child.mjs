// A writer that takes an S3 repository's writer lock, in a process of its
// own, for lease-race.spec.ts: prints "held" once it holds it, waits until
// the file <go> exists, then confirms it (as expire does before it removes
// anything) and prints "done"; a refusal prints "refused <code>". `lease`
// takes the leased LOCK only; `alone` takes the repository as expire does
// (the lock, then an exclusive hold). With
// POWDB_BACKUP_CRASH_AT=lease-takeover:1:stop it stops right before it
// replaces a stale lease. Credentials come from the AWS environment.
//
//   node lease-child.mjs lease|alone <repo> <go> [no-conditional-writes]
import { existsSync } from 'node:fs';
import { PackedRepository } from '../dist/index.js';
import { repoNative } from '../dist/lib/native/repo.js';

const [how, location, go, mode] = process.argv.slice(2);
const repo = await PackedRepository.open(location, { noConditionalWrites: mode === 'no-conditional-writes' });
const handle = repo.handle.handle;
const nap = new Int32Array(new SharedArrayBuffer(4));
const hold = async () => {
  process.stdout.write('held\n');
  for (let waited = 0; !existsSync(go) && waited < 60_000; waited += 20) Atomics.wait(nap, 0, 0, 20);
};
try {
  if (how === 'alone') {
    await repo.alone('expire', 0, async () => {
      await hold();
      await repo.confirmLock();
    });
  } else {
    await repoNative.writerLock(handle);
    await hold();
    await repoNative.writerRenew(handle);
    await repoNative.writerUnlock(handle);
  }
  process.stdout.write('done\n');
} catch (err) {
  process.stdout.write(`refused ${err.code}\n`);
  process.stderr.write(`${err.message}\n`);
}
repo.close();
