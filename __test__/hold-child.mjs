// A reader or a writer in a process of its own, for holds.spec.ts: restores
// the newest backup of a repository into <dest> (or, with `backup`, backs up
// <data dir> into it) and, at its first progress event (its hold or writer
// lock is taken by then), prints "reading" and stops until the file <go>
// exists. Object-storage credentials come from the AWS environment.
//
//   node hold-child.mjs <repo> <dest> <go>
//   node hold-child.mjs backup <repo> <data dir> <go>
import { existsSync } from 'node:fs';
import { Repository } from '../dist/index.js';

const args = process.argv.slice(2);
const backup = args[0] === 'backup';
const [location, target, go] = backup ? args.slice(1) : args;
const repo = await Repository.open(location);
const nap = new Int32Array(new SharedArrayBuffer(4));
let paused = false;
const onProgress = () => {
  if (paused) return;
  paused = true;
  process.stdout.write('reading\n');
  // Blocks this process's JS thread: the operation cannot finish, nor give up what it holds.
  while (!existsSync(go)) Atomics.wait(nap, 0, 0, 20);
};
if (backup) await repo.backup(target, { onProgress });
else await repo.restore(target, { onProgress });
repo.close();
process.stdout.write('done\n');
