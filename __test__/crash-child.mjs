// One backup or restore in a process of its own, for the fault-injection
// suite to SIGKILL (at a POWDB_BACKUP_CRASH_AT point, or at a random moment).
import { fullBackup, incrementalBackup, restoreChain } from '../dist/index.js';

const [op, ...args] = process.argv.slice(2);
if (op === 'full') await fullBackup(args[0], args[1]);
else if (op === 'incr') await incrementalBackup(args[0], [args[1]], args[2]);
else if (op === 'restore') await restoreChain(args[0], args.slice(2), args[1]);
else if (op === 'restore-table') await restoreChain(args[0], args.slice(3), args[1], { tables: [args[2]] });
else throw new Error(`unknown operation ${op}`);
