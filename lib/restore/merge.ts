// Merging restored tables into a stopped database (`restore --table T --into <data-dir>`): the tables are restored
// as usual (any source, any point) into a stage inside the target, then their files are moved in and the target's
// catalog replaced by one that lists them too, re-encoded for its version (crate/src/core/catalog/merge.rs).
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cancellable, type Cancellation } from '../common/abort.js';
import { crashPoint } from '../common/crashpoint.js';
import { BackupError } from '../common/errors.js';
import type { OperationOptions } from '../common/progress.js';
import { fsyncPath, pathExists as exists, writeFileDurably } from '../common/staging.js';
import { catalogNative, type TableChoice } from '../native/catalog.js';
import { native } from '../native/core.js';
import { checkCheckpointed } from '../source/datadir.js';
import type { TableRestoreSummary, TableSource } from './tables.js';

/**
 * Crash safety: the catalog is what makes a table exist, so it is replaced last, in one rename. Everything before
 * is built in this directory inside the target: the stage (a finalized table restore), the merged catalog files,
 * then `plan.json`, written durably, the point of no return. Before the plan a killed merge has changed nothing of
 * the target and a rerun starts afresh; after it, a rerun (any merge into the target) first finishes publishing
 * it, from the journal alone. A view file is published before the catalog: a view whose backing table is not yet
 * in the catalog makes the engine refuse the directory, never open it half-merged.
 */
export const MERGE_DIR = '.powdb-merge';
const PLAN = 'plan.json';
const STAGE = 'stage';

/** What `plan.json` holds: enough to finish the merge without its source. */
interface Plan {
  /** SHA-256 of the target's `catalog.bin` the merge was worked out on, and of the merged one. */
  base: string;
  result: string;
  /** Stage names to target names. */
  files: { from: string; to: string }[];
  /** Small files written aside in the journal, published before the catalog. */
  small: string[];
  summary: TableRestoreSummary;
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Refuses what a merge must not touch, before the lock is taken. */
async function checkTarget(target: string): Promise<void> {
  const st = await lstat(target).catch(() => undefined);
  if (!st || st.isSymbolicLink() || !st.isDirectory()) {
    throw new BackupError('ERR_NOT_A_DATA_DIR', `merge target ${target} is not a directory`);
  }
  if (!(await exists(join(target, 'catalog.bin')))) {
    throw new BackupError('ERR_NOT_A_DATA_DIR', `${target} has no catalog.bin: not a PowDB data directory`);
  }
  if (await exists(join(target, '.powdb-sync'))) {
    throw new BackupError(
      'ERR_INVALID_ARG',
      `${target} is sync-enabled: its replicas and retained history would never see the merged tables; restore them into a new directory instead`,
    );
  }
}

/**
 * Restores `choices` into `target`, an existing data directory no live process holds (its writer lock is taken for
 * the whole merge) with an empty WAL: `restoreTo` writes a finalized table restore into the directory it is given,
 * whose tables are then merged in; `source`, when the tables are taken from its files as they are (not a point
replayed from a WAL), lets what the merge would refuse be refused first. A name the target has is `ERR_TABLE_EXISTS`; a catalog version a merge does not
 * write is `ERR_UNSUPPORTED_FORMAT`, and what the target's version cannot hold `ERR_CATALOG_VERSION`.
 */
export async function mergeTables(
  target: string,
  choices: TableChoice[],
  options: OperationOptions,
  restoreTo: (stage: string) => Promise<TableRestoreSummary>,
  source?: TableSource,
): Promise<TableRestoreSummary> {
  await checkTarget(target);
  const lock = await native.acquireLock(target);
  try {
    return await cancellable(options.signal, async (cancel) => {
      const journal = join(target, MERGE_DIR);
      const names = choices.map((c) => c.renameTo ?? c.name);
      if (await exists(join(journal, PLAN))) {
        const finished = await publish(target, journal);
        // The rerun of the merge a crash interrupted: it is done now.
        if (sameTables(finished, names)) return { ...finished, merged: { ...finished.merged!, finishedRerun: true } };
      } else {
        await rm(journal, { recursive: true, force: true });
      }
      await checkCheckpointed(target, 'merge');
      const version = await catalogNative.checkMergeTarget(target);
      await checkNames(target, choices);
      await mkdir(journal, { mode: 0o700 });
      const planned = await (async () => {
        if (source) await dryRun(source, target, choices, journal);
        return plan(target, journal, version, restoreTo, cancel);
      })().catch(async (err: unknown) => {
        // Nothing of the target was touched: a failed run leaves no journal either.
        await rm(journal, { recursive: true, force: true });
        throw err;
      });
      await writeFileDurably(
        join(journal, `${PLAN}.tmp`),
        JSON.stringify(planned, (_k, v: unknown) => bigintOut(v)),
      );
      await rename(join(journal, `${PLAN}.tmp`), join(journal, PLAN));
      await fsyncPath(journal);
      crashPoint('merge-planned');
      return publish(target, journal);
    });
  } finally {
    await native.releaseLock(lock);
  }
}

/**
 * The merge worked out from the source's catalog alone, its result thrown away: what it would refuse (a version
 * the target cannot hold, a file a target table owns) is refused before the tables are restored.
 */
async function dryRun(source: TableSource, target: string, choices: TableChoice[], journal: string): Promise<void> {
  const probe = join(journal, 'probe');
  const [subset, out] = [join(probe, 'subset'), join(probe, 'out')];
  for (const dir of [probe, subset, out]) await mkdir(dir, { mode: 0o700 });
  const names = new Set(source.files.map((f) => f.name));
  const catalogs = ['catalog.bin', 'views.bin'].filter((n) => names.has(n));
  await source.write(
    catalogs.map((name) => ({ name, dest: join(probe, name) })),
    undefined,
  );
  await catalogNative.select(probe, choices, subset);
  await catalogNative.merge(subset, target, out);
  await rm(probe, { recursive: true, force: true });
}

/** Restores the tables into the stage and works out the merge, in the journal only. */
async function plan(
  target: string,
  journal: string,
  version: number,
  restoreTo: (stage: string) => Promise<TableRestoreSummary>,
  cancel: Cancellation,
): Promise<Plan> {
  const stage = join(journal, STAGE);
  const restored = await restoreTo(stage);
  const merge = await catalogNative.merge(stage, target, journal);
  const files = [];
  for (const f of merge.files) {
    cancel.check(); // up to the plan, an abort leaves the target as it was
    if (await exists(join(stage, f.from))) {
      await fsyncFile(join(stage, f.from));
      files.push({ from: f.from, to: f.to });
    }
  }
  return {
    base: await sha256(join(target, 'catalog.bin')),
    result: await sha256(join(journal, 'catalog.bin')),
    files,
    small: [...(merge.views.length > 0 ? ['views.bin'] : []), ...(merge.catalogLsn ? ['catalog.lsn'] : [])],
    summary: {
      ...restored,
      merged: { into: target, catalogVersion: version, views: merge.views, finishedRerun: false },
    },
  };
}

/** Publishes a planned merge (idempotent: a rerun after any crash picks up where it stopped) and ends its journal. */
async function publish(target: string, journal: string): Promise<TableRestoreSummary> {
  const plan = JSON.parse(await readFile(join(journal, PLAN), 'utf8'), (_k, v: unknown) => bigintIn(v)) as Plan;
  const now = await sha256(join(target, 'catalog.bin'));
  if (now !== plan.base && now !== plan.result) {
    throw new BackupError(
      'ERR_SOURCE_CHANGED',
      `${target}/catalog.bin changed since an interrupted merge of ${plan.summary.tables.map((t) => t.as).join(', ')} was planned in ${journal}; remove that directory to abandon the merge`,
    );
  }
  for (const f of plan.files) {
    const from = join(journal, STAGE, f.from);
    if (await exists(from)) await rename(from, join(target, f.to));
    crashPoint('merge-file-moved');
  }
  for (const name of plan.small) {
    if (await exists(join(journal, name))) await rename(join(journal, name), join(target, name));
  }
  await fsyncPath(target);
  crashPoint('merge-files-published');
  if (await exists(join(journal, 'catalog.bin')))
    await rename(join(journal, 'catalog.bin'), join(target, 'catalog.bin'));
  await fsyncPath(target);
  crashPoint('merge-catalog-published');
  // The plan goes first: a journal without it is a merge done (or never planned), whatever a kill left of the rest.
  await rm(join(journal, PLAN));
  await fsyncPath(journal);
  crashPoint('merge-plan-removed');
  await rm(journal, { recursive: true, force: true });
  await fsyncPath(target);
  return plan.summary;
}

/** A name the target has already, named as the user gave it. */
async function checkNames(target: string, choices: TableChoice[]): Promise<void> {
  const has = new Set((await catalogNative.read(target)).tables.map((t) => t.name));
  for (const c of choices) {
    const as = c.renameTo ?? c.name;
    if (has.has(as)) {
      const which = c.renameTo ? `merge ${c.name}` : 'merge it';
      throw new BackupError(
        'ERR_TABLE_EXISTS',
        `the target already has a table ${as}; ${which} under another name with --rename ${c.name}=<new name>`,
      );
    }
  }
}

function sameTables(summary: TableRestoreSummary, names: string[]): boolean {
  const merged = summary.tables.map((t) => t.as);
  return merged.length === names.length && names.every((n) => merged.includes(n));
}

/** bigints (row counts) through JSON, as tagged strings. */
function bigintOut(v: unknown): unknown {
  return typeof v === 'bigint' ? `bigint:${v}` : v;
}

function bigintIn(v: unknown): unknown {
  return typeof v === 'string' && v.startsWith('bigint:') ? BigInt(v.slice(7)) : v;
}
