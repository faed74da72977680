// `npm run demo`: the main job on a sample database that the real PowDB
// engine creates: a backup repository with a full backup, increments and a
// differential, its catalog, point-in-time restores checked by the engine
// itself, verification, an export to the reference format and a dry-run
// expiry. The repository is packed (format 4): deduplicated, compressed and encrypted
// (the password comes from POWDB_BACKUP_PASSWORD here).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const work = join(root, '.tmp', 'demo');
const fixture = join(root, 'target', 'release', 'powdb-fixture');
const cli = join(root, 'dist', 'lib', 'cli.js');
const data = join(work, 'data');
const repo = join(work, 'repo');
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
const idOf = (line) => line.split(' ')[1];

rmSync(work, { recursive: true, force: true });
process.env.POWDB_BACKUP_PASSWORD ??= 'demo password';
console.log('(POWDB_BACKUP_PASSWORD is set: the repository is encrypted with it)');
engine('create', data, '--rows', '10000', '--index');
backup('init', repo, '--encrypt');
backup('backup', data, '--repo', repo);
engine('insert', data, '--from', '10000', '--count', '500');
const afterInsert = idOf(backup('backup', data, '--repo', repo, '--type', 'incr'));
engine('add-table', data, '--table', 'Orders', '--rows', '250', '--index');
backup('backup', data, '--repo', repo, '--type', 'incr');
engine('insert', data, '--from', '10500', '--count', '100');
backup('backup', data, '--repo', repo, '--type', 'diff');
backup('info', '--repo', repo);

backup('restore', '--repo', repo, at('as-of-insert'), '--as-of', afterInsert);
backup('restore', '--repo', repo, at('latest'));
backup('verify', '--repo', repo, '--quiet');
backup('export', '--repo', repo, at('exported'), '--as-of', afterInsert);
backup('verify', at('exported'), '--quiet');
backup('expire', '--repo', repo, '--retain-full', '1', '--dry-run');

console.log('\nRows the PowDB engine finds in each restore:');
const found = {};
for (const name of ['as-of-insert', 'latest']) {
  found[name] = rows(at(name));
  console.log(
    `  ${name}: ${Object.entries(found[name])
      .map(([t, r]) => `${t}=${r.count}`)
      .join(', ')}`,
  );
}
if (
  found['as-of-insert'].T?.count !== 10500 ||
  found['as-of-insert'].Orders ||
  found.latest.T?.count !== 10600 ||
  found.latest.Orders?.count !== 250
) {
  console.error('demo: a restored database does not hold the expected rows');
  process.exit(1);
}
console.log(`\nDemo files are in ${work}`);
