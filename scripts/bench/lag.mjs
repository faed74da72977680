// Runs one full backup in this process while a 10 ms timer measures how late
// the JS thread serves it: prints {"maxLateMs", "secs"}.
import { fullBackup } from '../../dist/index.js';

const [dataDir, dest] = process.argv.slice(2);
let maxLate = 0;
let expected = performance.now() + 10;
const timer = setInterval(() => {
  const now = performance.now();
  maxLate = Math.max(maxLate, now - expected);
  expected = now + 10;
}, 10);
const started = performance.now();
await fullBackup(dataDir, dest);
clearInterval(timer);
console.log(JSON.stringify({ maxLateMs: maxLate, secs: (performance.now() - started) / 1000 }));
