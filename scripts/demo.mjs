// `npm run demo`: the main job on a sample database that the real PowDB
// engine creates: a full backup, two increments (rows, then a new table),
// and point-in-time restores of the chain, checked by the engine itself.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'demo');
const fixture = join(root, 'target', 'release', 'powdb-fixture');
const cli = join(root, 'dist', 'lib', 'cli.js');
const data = join(work, 'data');
const at = (name) => join(work, name);

function step(title, cmd, args) {
  console.log(`\n$ ${title}`);
  const out = execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  console.log(out);
  return out;
}
const engine = (...args) => step(`powdb-fixture ${args.join(' ')}`, fixture, args);
const backup = (...args) => step(`powdb-backup ${args.join(' ')}`, process.execPath, [cli, ...args]);
const rows = (dir) => JSON.parse(execFileSync(fixture, ['report', dir], { encoding: 'utf8' })).tables;

rmSync(work, { recursive: true, force: true });
engine('create', data, '--rows', '10000', '--index');
backup('backup', data, at('full'));
engine('insert', data, '--from', '10000', '--count', '500');
backup('backup', data, at('inc1'), '--base', at('full'));
engine('add-table', data, '--table', 'Orders', '--rows', '250', '--index');
backup('backup', data, at('inc2'), '--base', at('full'), '--base', at('inc1'));

backup('restore', at('full'), at('as-of-inc1'), '--apply', at('inc1'));
backup('restore', at('full'), at('latest'), '--apply', at('inc1'), '--apply', at('inc2'));

console.log('\nRows the PowDB engine finds in each restore:');
for (const name of ['as-of-inc1', 'latest']) {
  const tables = rows(at(name));
  console.log(
    `  ${name}: ${Object.entries(tables)
      .map(([t, r]) => `${t}=${r.count}`)
      .join(', ')}`,
  );
}
const latest = rows(at('latest'));
if (latest.T?.count !== 10500 || latest.Orders?.count !== 250) {
  console.error('demo: the restored database does not hold the expected rows');
  process.exit(1);
}
console.log(`\nDemo files are in ${work}`);
