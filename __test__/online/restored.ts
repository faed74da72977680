// The checks of a restored data directory against a workload's log
// (./workload.ts), done the way a user would: the real engine opens it
// (`powdb-cli --data-dir`, an embedded open that replays the WAL and
// checkpoints), `powdb-cli verify` reads it, and a real server on it takes
// writes that must survive a kill -9.
//
// The window: `startMs` is Date.now() taken before the freeze began and
// `endMs` Date.now() taken after it ended. The tool stamps with the same
// wall clock (ms, truncated): a send just before sending, an ack just after
// the answer. So `acked < startMs` proves the commit came before the freeze,
// and a row sent after `endMs` cannot be in it; no margin is needed, as long
// as the clock is not stepped during the test.
import { spawn } from 'node:child_process';
import { powdbBinaries, startPowdbServer, type User } from '../powdb-server.js';

/** [seq, sent unix ms (first attempt), acked unix ms or null (not known to have taken effect)] */
export type Stamp = [number, number, number | null];

/** One run's log: what `powdb-load run` wrote when it stopped. */
export interface RunLog {
  format: 'powdb-load-run/1';
  seed: number;
  started_unix_ms: number;
  stopped_unix_ms: number;
  stop_reason: 'signal' | 'stdin' | 'seconds' | 'failed';
  config: { writers: number; transfers: number; big_values: boolean; ddl: boolean; io_timeout_ms: number };
  /** Accounts 1..accounts, and the sum of their balances, which never changes. */
  accounts: number;
  total: number;
  /** Writer w's rows in Log: id = w * 1e9 + seq, pad = expectedPad(w, seq, padLength). */
  writers: { writer: number; rows: [...Stamp, number][] }[];
  transfers: Record<string, number>;
  ddl: {
    /** create, add_column (note), add_index (on v) and drop steps, in order; tables are never re-created. */
    ops: { table: string; op: 'create' | 'add_column' | 'add_index' | 'drop'; sent: number; acked: number | null }[];
    /** Each D table's rows: id = seq, v = 10 * seq. */
    rows: Record<string, Stamp[]>;
  };
  errors: Record<string, number>;
  error_samples: string[];
  fatal: string | null;
}

/** The row pad the tool writes: "w-seq-", then one letter chosen by seq, to `length` characters. */
export function expectedPad(writer: number, seq: number, length: number): string {
  const prefix = `${writer}-${seq}-`;
  return prefix + String.fromCharCode(97 + (seq % 26)).repeat(Math.max(0, length - prefix.length));
}

/** Date.now() before the freeze began, and after it ended. */
export interface FreezeWindow {
  startMs: number;
  endMs: number;
}

/** A writer's (or D table's) rows 1..k in the image, and the bounds the log sets on k. */
export interface PrefixCheck {
  name: string;
  k: number;
  lo: number;
  hi: number;
}

export interface CheckResult {
  ok: boolean;
  seed: number;
  failures: string[];
  prefixes: PrefixCheck[];
  /** Sum of the balances, and Log's row count, as the engine reports them (null: not read). */
  sum: number | null;
  rows: number | null;
}

export interface CheckOptions {
  /** Do not print failures (a negative control expects them). */
  quiet?: boolean;
}

interface Rows {
  columns: string[];
  rows: unknown[][];
}

/** Runs powdb-cli (no POWDB_* from this environment); one JSON answer a statement. */
async function powdbCli(args: string[]): Promise<{ code: number | null; answers: any[]; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('POWDB_')));
  const child = spawn(powdbBinaries().cli, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('close', r));
  clearTimeout(timer);
  const text = Buffer.concat(out).toString('utf8');
  const answers = text.startsWith('{\n')
    ? [JSON.parse(text)]
    : text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
  return { code, answers, stderr: stderr.trim() };
}

/** Opens `dir` with the engine and runs `powql` (`;`-separated), or says why it could not. */
async function query(dir: string, powql: string): Promise<any[] | string> {
  const r = await powdbCli(['--data-dir', dir, '--format', 'json', '--exec', powql]);
  return r.code === 0 ? r.answers : `\`${powql.slice(0, 60)}\` failed (${r.code}): ${r.stderr.slice(0, 300)}`;
}

async function verify(dir: string): Promise<string[]> {
  const r = await powdbCli(['verify', '--data-dir', dir, '--format', 'json']);
  const report = r.answers[0];
  if (r.code === 0 && report?.ok === true) return [];
  return [`powdb-cli verify is not clean (${r.code}): ${JSON.stringify(report?.errors ?? r.stderr).slice(0, 400)}`];
}

/** The bounds on k: acked before the freeze began <= k <= sent before it ended. */
function bounds(stamps: Stamp[], w: FreezeWindow): { lo: number; hi: number } {
  let lo = 0;
  let hi = 0;
  for (const [seq, sent, acked] of stamps) {
    if (acked !== null && acked < w.startMs) lo = Math.max(lo, seq);
    if (sent <= w.endMs) hi = Math.max(hi, seq);
  }
  return { lo, hi };
}

/** Checks that `seqs` are exactly 1..k with lo <= k <= hi. */
function prefix(name: string, seqs: number[], stamps: Stamp[], w: FreezeWindow, failures: string[]): PrefixCheck {
  const sorted = [...seqs].sort((a, b) => a - b);
  const bad = sorted.findIndex((s, i) => s !== i + 1);
  if (bad >= 0) failures.push(`${name}: rows are not 1..${sorted.length}: at position ${bad + 1} found ${sorted[bad]}`);
  const k = sorted.length;
  const { lo, hi } = bounds(stamps, w);
  if (k < lo) failures.push(`${name}: ${k} rows, but ${lo} were acknowledged before the freeze began (lost)`);
  if (k > hi) failures.push(`${name}: ${k} rows, but only ${hi} were sent before the freeze ended`);
  return { name, k, lo, hi };
}

type When = 'before' | 'after' | 'unknown';

/** Whether a logged step is in the image: known done before the freeze, sent after it (or never), or either. */
function when(op: { sent: number; acked: number | null } | undefined, w: FreezeWindow): When {
  if (!op || op.sent > w.endMs) return 'after';
  return op.acked !== null && op.acked < w.startMs ? 'before' : 'unknown';
}

/** Each D table the DDL worker made: present or absent, its column, its index and its rows, as the log allows. */
async function checkDdl(dir: string, log: RunLog, tables: string[], w: FreezeWindow, r: CheckResult) {
  const names = new Set(log.ddl.ops.map((o) => o.table));
  for (const t of tables.filter((t) => !['Log', 'Acct'].includes(t) && !names.has(t))) {
    r.failures.push(`table ${t} is not one the workload made`);
  }
  for (const t of names) {
    const find = (op: string) => log.ddl.ops.find((o) => o.table === t && o.op === op);
    const step = (op: string) => when(find(op), w);
    const exists = tables.includes(t);
    if (!exists && step('create') === 'before' && step('drop') === 'after') r.failures.push(`table ${t} is missing`);
    if (exists && (step('create') === 'after' || step('drop') === 'before')) r.failures.push(`table ${t} is back`);
    if (!exists) continue;
    const answers = await query(dir, `describe ${t}; ${t} { .id, .v }; count(${t})`);
    if (typeof answers === 'string') {
      r.failures.push(answers);
      continue;
    }
    const [describe, rows, count] = answers as [Rows, Rows, { value: number }];
    if (count.value !== rows.rows.length) r.failures.push(`count(${t}) is ${count.value}, a scan ${rows.rows.length}`);
    const column = describe.rows.find((c) => c[0] === 'note');
    const indexed = describe.rows.find((c) => c[0] === 'v')?.[3] === 'index';
    if (step('add_column') === 'before' && !column) r.failures.push(`${t} lost its column note`);
    if (step('add_column') === 'after' && column) r.failures.push(`${t} has a column note it was not given yet`);
    if (step('add_index') === 'before' && !indexed) r.failures.push(`${t} lost its index on v`);
    if (step('add_index') === 'after' && indexed) r.failures.push(`${t} has an index on v it was not given yet`);
    for (const [id, v] of rows.rows as number[][]) if (v !== id! * 10) r.failures.push(`${t} row ${id} has v ${v}`);
    const ids = rows.rows.map((row) => row[0] as number);
    r.prefixes.push(prefix(t, ids, log.ddl.rows[t] ?? [], w, r.failures));
  }
}

/** Log: each writer's rows 1..k within its bounds, every pad intact, no row the log does not explain. */
function checkLog(log: RunLog, count: number, rows: Rows, w: FreezeWindow, r: CheckResult) {
  const seqs = new Map(log.writers.map((x) => [x.writer, [] as number[]]));
  for (const [id, writer, seq, pad] of rows.rows as [number, number, number, string][]) {
    const logged = log.writers.find((x) => x.writer === writer)?.rows[seq - 1];
    if (!logged) {
      r.failures.push(`Log has a row the workload never sent: writer ${writer} seq ${seq}`);
      continue;
    }
    seqs.get(writer)!.push(seq);
    if (id !== writer * 1e9 + seq || pad !== expectedPad(writer, seq, logged[3])) {
      r.failures.push(`Log row ${writer}/${seq} is damaged (id ${id}, pad of ${pad.length} characters)`);
    }
  }
  for (const x of log.writers) {
    const stamps = x.rows.map(([seq, sent, acked]) => [seq, sent, acked] as Stamp);
    r.prefixes.push(prefix(`writer ${x.writer}`, seqs.get(x.writer)!, stamps, w, r.failures));
  }
  if (count !== rows.rows.length) r.failures.push(`count(Log) is ${count} but a scan returns ${rows.rows.length} rows`);
}

/** Everything but durability: what the image holds against the log, then verify. */
async function checkImage(dir: string, log: RunLog, w: FreezeWindow, r: CheckResult) {
  const statements = 'schema; count(Log); Acct { .id }; sum(Acct { .bal }); Log { .id, .writer, .seq, .pad }';
  const answers = await query(dir, statements);
  if (typeof answers === 'string') {
    r.failures.push(`the engine cannot open the copy: ${answers}`);
    return;
  }
  const [schema, count, accounts, sum, rows] = answers as [Rows, { value: number }, Rows, { value: number }, Rows];
  r.rows = count.value;
  r.sum = sum.value;
  const ids = accounts.rows.map((a) => a[0] as number).sort((a, b) => a - b);
  if (ids.length !== log.accounts || ids.some((id, i) => id !== i + 1)) {
    r.failures.push(`the accounts are not 1..${log.accounts}: ${ids.length} of them (${ids.slice(0, 20).join(',')})`);
  }
  if (sum.value !== log.total) r.failures.push(`the balances sum to ${sum.value}, not ${log.total}`);
  checkLog(log, count.value, rows, w, r);
  const tables = schema.rows.map((t) => t[0] as string);
  await checkDdl(dir, log, tables, w, r);
  r.failures.push(...(await verify(dir)));
}

const CHECKER: User = { name: 'checker', role: 'readwrite', password: 'checker-pw' };
const POST_ROWS = 20;

/** A server on the copy takes acknowledged writes, is killed -9, and a reopen still has them and the image. */
async function checkDurable(dir: string, r: CheckResult) {
  const server = await startPowdbServer({ dataDir: dir, users: [CHECKER] });
  const inserts = Array.from({ length: POST_ROWS }, (_, i) => `insert Post { id := ${i + 1} }`);
  const writes = ['type Post { required unique id: int }', ...inserts].join('; ');
  const run = await server.run(CHECKER.name, CHECKER.password, writes);
  await server.kill();
  if (run.code !== 0) {
    r.failures.push(`writes to a server on the copy failed: ${run.stderr}`);
    return;
  }
  const answers = await query(dir, 'count(Post); count(Log); sum(Acct { .bal })');
  if (typeof answers === 'string') {
    r.failures.push(`reopening after kill -9: ${answers}`);
    return;
  }
  const [post, count, sum] = answers.map((a: { value: number }) => a.value);
  if (post !== POST_ROWS) r.failures.push(`after kill -9 the copy holds ${post} of ${POST_ROWS} acknowledged writes`);
  if (count !== r.rows || sum !== r.sum) r.failures.push(`after kill -9 Log has ${count} rows and the sum is ${sum}`);
  r.failures.push(...(await verify(dir)).map((f) => `after kill -9: ${f}`));
}

/**
 * Checks a restored data directory (written to: it is opened read-write) against a workload's log. Durability is
 * checked only when everything else passed. Prints the seed and the failures unless `quiet`.
 */
export async function checkRestored(
  dir: string,
  log: RunLog,
  window: FreezeWindow,
  options: CheckOptions = {},
): Promise<CheckResult> {
  const r: CheckResult = { ok: false, seed: log.seed, failures: [], prefixes: [], sum: null, rows: null };
  await checkImage(dir, log, window, r);
  if (r.failures.length === 0) await checkDurable(dir, r);
  r.ok = r.failures.length === 0;
  if (!r.ok && !options.quiet) {
    console.error(`[workload] seed ${log.seed}: the restored copy fails ${r.failures.length} check(s):`);
    for (const f of r.failures.slice(0, 20)) console.error(`  ${f}`);
  }
  return r;
}
