// verify of a format-2 repository: every pack read and checked, then each
// backup's lists and chunks; with a source, one backup compared with it.
import { cancellable } from '../../common/abort.js';
import { BackupError } from '../../common/errors.js';
import { repoNative } from '../../native/repo.js';
import { Progress, type OperationOptions } from '../../common/progress.js';
import type { VerifyOptions, VerifyProblem, VerifyReport } from '../../chain/verify.js';
import { compareWithSource, type BackedFile } from '../../source/compare.js';
import type { Snapshot } from '../snapshot.js';
import { sortRecords } from '../record.js';
import { currentSource, sourceKey } from '../source.js';
import { readSyncIdentity } from '../../source/sync.js';
import type { PackedContext } from './context.js';

/** The progress of a repository verify, which reads every pack: the packs (`data/`) as one piece of work. */
async function packProgress(handle: number, options: OperationOptions, token?: number) {
  if (!options.onProgress) return undefined;
  const packs = await repoNative.listObjects(handle, PACKS).catch(() => []); // the check reports why
  if (packs.length === 0) return undefined;
  const bytes = packs.reduce((sum, p) => sum + p.size, 0n);
  const progress = new Progress('verify', packs.length, bytes, options.onProgress, token);
  progress.fileStarted(PACKS, bytes);
  return () => progress.fileDone(PACKS, bytes, packs.length);
}

/** Where packs are (crate/src/core/repo/index.rs). */
const PACKS = 'data/';

/** A snapshot's files, each compared chunk by chunk in memory (the restore drill of `verify --source`). */
function backedFiles(repo: PackedContext, snapshot: Snapshot): BackedFile[] {
  return snapshot.files.map((f) => ({
    name: f.name,
    len: f.len,
    heap: f.heap,
    compare: async (path: string, token?: number) => {
      const c = await repoNative.compareFile(repo.handle.handle, f.lists, f.len, path, f.heap, token);
      return {
        equal: c.equal,
        sourceLen: c.sourceLen,
        differing: c.differing.map(Number),
        differingCount: Number(c.differingCount),
      };
    },
  }));
}

/** The newest backup of the source `dataDir` is (undefined when none is: the pick then says why). */
async function newestOfDirectory(repo: PackedContext, dataDir: string): Promise<string | undefined> {
  const records = sortRecords((await repo.readHeads()).heads.map((s) => s.record));
  const origin = await currentSource(dataDir, (await readSyncIdentity(dataDir))?.database_id);
  return repo.sources(records).get(sourceKey(origin))?.at(-1)?.id;
}

/** Compares one backup (default: the newest of the directory's source) with a data directory, file by file and page by page. */
function verifyAgainstSource(
  repo: PackedContext,
  source: string,
  options: VerifyOptions & { id?: string },
): Promise<{ id: string; report: VerifyReport }[]> {
  return cancellable(options.signal, async (cancel) => {
    await repoNative.refresh(repo.handle.handle);
    const snapshot = await repo.pickSnapshot(options.id ?? (await newestOfDirectory(repo, source)));
    const errors = await compareWithSource(backedFiles(repo, snapshot), source, {
      token: cancel.token,
      onProgress: options.onProgress,
    });
    const checks = errors.length === 0 ? [`${source}: every file and page is identical to the backup`] : [];
    return [{ id: snapshot.record.id, report: { ok: errors.length === 0, checks, errors } }];
  });
}

/** Verifies every pack and backup (or, with `source`, compares one backup with a data directory). */
export async function verify(
  repo: PackedContext,
  options: VerifyOptions & { id?: string },
): Promise<{ id: string; report: VerifyReport }[]> {
  if (options.source !== undefined) return verifyAgainstSource(repo, options.source, options);
  return cancellable(options.signal, async (cancel) => {
    await repoNative.refresh(repo.handle.handle);
    const ids = options.id ? [options.id] : await repo.snapshotIds();
    const unreadable: { id: string; report: VerifyReport }[] = [];
    const snapshots: Snapshot[] = [];
    for (const id of ids) {
      try {
        snapshots.push(await repo.snapshot(id));
      } catch (err) {
        const e = err as BackupError;
        unreadable.push({
          id,
          report: { ok: false, checks: [], errors: [{ code: e.code, message: e.message, file: id }] },
        });
      }
    }
    const backups = snapshots.map((s) => ({
      id: s.record.id,
      files: s.files.flatMap((f) => [
        { name: f.name, lists: f.lists },
        ...(f.hints ? [{ name: `${f.name} (change hints)`, lists: f.hints }] : []),
      ]),
    }));
    const packsRead = await packProgress(repo.handle.handle, options, cancel.token);
    const result = await repoNative.check(repo.handle.handle, backups, cancel.token);
    packsRead?.();
    if (result.warning) process.emitWarning(`${repo.dir}: ${result.warning}`, 'PowdbBackupWarning');
    const damage = result.problems.filter((p) => !p.code.startsWith('NOTE_'));
    const notes = result.problems.filter((p) => p.code.startsWith('NOTE_')).map((p) => p.message);
    if (result.damageRecorded > 0) {
      notes.push(
        `recorded ${result.damageRecorded} damaged chunk location(s): new backups store those chunks again from their source; \`repair\` drops them and keeps what is intact`,
      );
    }
    const repository = {
      id: 'repository',
      report: {
        ok: damage.length === 0,
        checks: [`${result.packs} packs, ${result.blobs} chunks read and checked against their ids`, ...notes],
        errors: damage.map((p) => ({ ...p, file: repo.dir })),
      },
    };
    const reports = result.backups.map((b) => {
      const files = snapshots.find((s) => s.record.id === b.id)!.files.length;
      const errors: VerifyProblem[] = b.problems.map((p) => ({ ...p, file: p.message.split(':')[0]! }));
      return {
        id: b.id,
        // Said only of a backup without problems: never "intact" beside a failure.
        report: {
          ok: errors.length === 0,
          checks: errors.length ? [] : [`${files} files: every chunk present and intact`],
          errors,
        },
      };
    });
    const archive = options.id ? undefined : await repo.wal.verify(cancel.token);
    return [
      repository,
      ...(archive ? [{ id: 'archive', report: archive }] : []),
      ...unreadable,
      ...reports.sort((a, b) => (a.id < b.id ? -1 : 1)),
    ];
  });
}
