// Times one operation inside this process, without process start-up: what
// the bench compares with the machine's read ceiling (and, `open`, what opening
// a repository costs against its size). Prints {"secs"}.
import { PackedRepository, fullBackup, incrementalBackup, restoreChain, verifyBackup } from '../../dist/index.js';

const [op, ...args] = process.argv.slice(2);
const operations = {
  full: ([data, dest]) => fullBackup(data, dest),
  incr: ([data, base, dest]) => incrementalBackup(data, base, dest),
  restore: ([full, dest, ...incs]) => restoreChain(full, incs, dest),
  open: ([repo]) => PackedRepository.open(repo).then((r) => r.close()),
  verify: ([dir]) =>
    verifyBackup(dir).then((r) => {
      if (!r.ok) throw new Error(JSON.stringify(r.errors[0]));
    }),
};
const started = performance.now();
await operations[op](args);
console.log(JSON.stringify({ secs: (performance.now() - started) / 1000 }));
