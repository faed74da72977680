// One format-2 repository operation in a process of its own, for the
// fault-injection suite (fault-injection-v2.spec.ts) to SIGKILL at a
// POWDB_BACKUP_CRASH_AT point or at a random moment. An encrypted
// repository's password comes from POWDB_BACKUP_PASSWORD.
//
//   node crash-child-v2.mjs backup <repo> <data dir>
//   node crash-child-v2.mjs expire <repo> <retain full>
//
// Prints "start" once the repository is open (the parent times random kills
// from there), then one "result <json>" line when the operation is done.
import { PackedRepository } from '../dist/index.js';

const [op, dir, arg] = process.argv.slice(2);
const repo = await PackedRepository.open(dir);
process.stdout.write('start\n');
let result;
if (op === 'backup') result = await repo.backup(arg);
else if (op === 'expire') result = await repo.expire({ retainFull: Number(arg) });
else throw new Error(`unknown operation ${op}`);
repo.close();
process.stdout.write(`result ${JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
