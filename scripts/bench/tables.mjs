// --part tables: restoring one table against restoring the whole database, from a format-2 repository. The data:
// the benchmark database (table T, indexed) plus a table Small of about 1% of its rows, backed up once; then
// `restore --repo` of everything, and `restore --repo --table Small`, runs alternating, each into a fresh
// directory after a `sync`. The one-table restore includes what the whole one does not: fetching the catalog first
// and the engine's open, checkpoint and verify of the result.
import { bytesOf, fixture, copyOf, fresh, measure, ours, pristine, run, runOurs, scratch, summary } from './kit.mjs';

function sample(argv, out) {
  fresh(out);
  run('sync', []);
  return measure(argv);
}

export function benchTables(mib, runs) {
  const db = pristine(mib);
  const { dir, at } = scratch(`tables-${mib}`);
  const data = copyOf(db.dir, at('data'));
  const smallRows = Math.max(1, Math.round(db.rows / 100));
  const padding = db.pad === undefined ? [] : ['--pad', String(db.pad)];
  fixture('add-table', data, '--table', 'Small', '--rows', String(smallRows), '--index', ...padding);
  const source = fixture('dump', data).tables.Small;
  runOurs('init', at('repo'), '--compression', 'none');
  runOurs('backup', data, '--repo', at('repo'));
  const dataBytes = bytesOf(data);
  const whole = [];
  const table = [];
  let bytes = { whole: 0, table: 0 };
  for (let r = 0; r < runs; r++) {
    whole.push(sample(ours('restore', '--repo', at('repo'), at('out')), at('out')));
    bytes.whole = bytesOf(at('out'));
    table.push(sample(ours('restore', '--repo', at('repo'), at('out'), '--table', 'Small'), at('out')));
    bytes.table = bytesOf(at('out'));
  }
  const restored = fixture('dump', at('out')).tables;
  if (JSON.stringify(restored) !== JSON.stringify({ Small: source })) {
    throw new Error(`the one-table restore of Small differs from the source: ${JSON.stringify(restored)}`);
  }
  fresh(dir);
  return { mib, dataBytes, smallRows, whole: summary(whole), table: summary(table), bytes };
}
