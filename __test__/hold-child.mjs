// A reader in a process of its own, for holds.spec.ts: restores the newest
// backup of a repository and, at its first progress event (its hold is
// published by then), prints "reading" and stops until the file <go> exists.
// Object-storage credentials come from the AWS environment.
//
//   node hold-child.mjs <repo> <dest> <go>
import { existsSync } from 'node:fs';
import { Repository } from '../dist/index.js';

const [location, dest, go] = process.argv.slice(2);
const repo = await Repository.open(location);
const nap = new Int32Array(new SharedArrayBuffer(4));
let paused = false;
await repo.restore(dest, {
  onProgress: () => {
    if (paused) return;
    paused = true;
    process.stdout.write('reading\n');
    // Blocks this process's JS thread: the restore cannot finish, nor withdraw its hold.
    while (!existsSync(go)) Atomics.wait(nap, 0, 0, 20);
  },
});
repo.close();
process.stdout.write('done\n');
