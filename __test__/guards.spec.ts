import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import {
  PackedRepository,
  Repository,
  fullBackup,
  incrementalBackup,
  restore,
  verifyBackup,
  type ProgressEvent,
} from '../index.js';
import { FIXTURE, GENS, fixture, insertRows, makeDb, rejectsWith, report, tmp } from './helpers.js';

/** Nothing but `expected` is left in the parent of a failed destination. */
function expectNoLeftovers(dest: string, expected: string[] = []): void {
  expect(existsSync(dest)).toBe(expected.includes(dest.split('/').at(-1)!));
  expect(readdirSync(join(dest, '..')).sort()).toEqual(expected.sort());
}

describe.each(GENS)('refusing unsafe sources and destinations (engine %s)', (gen) => {
  it('refuses a data dir whose WAL was not checkpointed, then backs it up once the engine closed it', async () => {
    const data = makeDb(gen, 40);
    fixture(gen, 'dirty', data, '--from', 40, '--count', 7);
    const dest = join(tmp(), 'full');
    const err = await rejectsWith(fullBackup(data, dest), 'ERR_NOT_CHECKPOINTED');
    expect(err.message).toContain('wal.log');
    expect(err.message).toContain('Stop the PowDB server cleanly');
    expectNoLeftovers(dest);

    expect(report(gen, data).T!.count).toBe(47); // the engine replays and checkpoints
    await fullBackup(data, dest);
    const restored = join(tmp(), 'r');
    await restore(dest, restored);
    expect(report(gen, restored).T!.count).toBe(47);
  });

  it('refuses a sync identity powdb-sync would not accept, naming the file and the reason', async () => {
    const data = makeDb(gen, 5);
    mkdirSync(join(data, '.powdb-sync'));
    const identity = join(data, '.powdb-sync', 'identity.json');
    const cases: [string, string][] = [
      ['{}', 'format_version'],
      [
        '{"format_version": 1, "database_id": "00000000000000000000000000000000", "primary_generation": 1, "created_unix_secs": 1}',
        'non-zero',
      ],
      ['{"format_version": 1, "database_id": "abc", "primary_generation": 1, "created_unix_secs": 1}', '32 hex'],
      [
        '{"format_version": 2, "database_id": "0123456789abcdef0123456789abcdef", "primary_generation": 1, "created_unix_secs": 1}',
        'format 2',
      ],
      [
        '{"format_version": 1, "database_id": "0123456789abcdef0123456789abcdef", "primary_generation": 0, "created_unix_secs": 1}',
        'generation',
      ],
    ];
    for (const [text, why] of cases) {
      writeFileSync(identity, text);
      const err = await rejectsWith(fullBackup(data, join(tmp(), 'full')), 'ERR_SYNC_IDENTITY');
      expect(err.message).toContain(identity);
      expect(err.message).toContain(why);
    }
  });

  it('refuses a missing data dir and a dir without catalog.bin', async () => {
    await rejectsWith(fullBackup(join(tmp(), 'nope'), join(tmp(), 'full')), 'ERR_NOT_A_DATA_DIR');
    const data = makeDb(gen, 5);
    rmSync(join(data, 'catalog.bin'));
    const err = await rejectsWith(fullBackup(data, join(tmp(), 'full')), 'ERR_NOT_A_DATA_DIR');
    expect(err.message).toContain('catalog.bin');
  });

  it('refuses a non-empty or symlinked backup destination', async () => {
    const data = makeDb(gen, 5);
    const busy = tmp();
    writeFileSync(join(busy, 'keep'), 'x');
    await rejectsWith(fullBackup(data, busy), 'ERR_DEST_NOT_EMPTY');
    expect(readFileSync(join(busy, 'keep'), 'utf8')).toBe('x');
    const link = join(tmp(), 'link');
    symlinkSync(tmp(), link);
    await rejectsWith(fullBackup(data, link), 'ERR_UNSAFE_PATH');
  });

  it('publishes nothing when a backup fails part-way (a durable file is a symlink)', async () => {
    const data = makeDb(gen, 5);
    symlinkSync('/etc/hostname', join(data, 'Evil.heap'));
    const dest = join(tmp(), 'full');
    await rejectsWith(fullBackup(data, dest), 'ERR_UNSAFE_PATH');
    expectNoLeftovers(dest);
  });

  it('publishes nothing when a restore fails part-way (a backup file is missing)', async () => {
    const backup = join(tmp(), 'full');
    await fullBackup(makeDb(gen, 30, '--index'), backup);
    rmSync(join(backup, 'T.heap'));
    const dest = join(tmp(), 'r');
    await rejectsWith(restore(backup, dest), 'ERR_MISSING_FILE');
    expectNoLeftovers(dest);
  });
});

describe('a directory written to during the backup', () => {
  it('engine old (which ignores LOCK): a writer mid-backup fails it with ERR_SOURCE_CHANGED', async () => {
    const data = makeDb('old', 3000, '--index');
    const dest = join(tmp(), 'full');
    let wrote = false;
    const onProgress = () => {
      if (!wrote) insertRows('old', data, 3000, 50);
      wrote = true;
    };
    const err = await rejectsWith(fullBackup(data, dest, { onProgress, concurrency: 1 }), 'ERR_SOURCE_CHANGED');
    expect(err.message).toContain('changed while it was being backed up');
    expectNoLeftovers(dest);
    await fullBackup(data, dest); // quiet again: the rerun succeeds
    expect(report('old', dest).T!.count).toBe(3050);
  });

  it('engine new: a server cannot start while a backup holds the lock', async () => {
    const data = makeDb('new', 3000, '--index');
    const dest = join(tmp(), 'full');
    let refusal = '';
    const onProgress = () => {
      if (refusal) return;
      try {
        insertRows('new', data, 3000, 50);
        refusal = 'the engine opened the directory';
      } catch (err) {
        refusal = String((err as { stderr?: string }).stderr);
      }
    };
    const manifest = await fullBackup(data, dest, { onProgress, concurrency: 1 });
    expect(refusal).toMatch(/already open by process/);
    expect(existsSync(join(data, 'LOCK'))).toBe(false);
    expect(manifest.files.length).toBeGreaterThan(2);
  });
});

/** Opens `data` with the real engine in a child process that keeps it open until stdin closes. */
async function holdLock(data: string) {
  const server = spawn(FIXTURE, ['hold', data, '--gen', 'new'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string];
  const pid = JSON.parse(line).pid as number;
  expect(pid).toBe(server.pid);
  return { server, pid };
}

describe('a live server (engine new, which writes LOCK)', () => {
  it('refuses a dir whose LOCK a live engine holds, and backs it up after the engine exits', async () => {
    const data = makeDb('new', 25);
    const { server } = await holdLock(data);

    const dest = join(tmp(), 'full');
    const err = await rejectsWith(fullBackup(data, dest), 'ERR_LOCKED');
    expect(err.message).toContain(`process ${server.pid}`);
    expectNoLeftovers(dest);

    server.stdin!.end();
    await once(server, 'exit');
    await fullBackup(data, dest);
  });

  it('backs up past a stale LOCK whose process was killed', async () => {
    const data = makeDb('new', 25);
    const { server, pid } = await holdLock(data);
    server.kill('SIGKILL');
    await once(server, 'exit');
    expect(readFileSync(join(data, 'LOCK'), 'utf8').trim()).toBe(String(pid));

    const dest = join(tmp(), 'full');
    await fullBackup(data, dest);
    const restored = join(tmp(), 'r');
    await restore(dest, restored);
    expect(report('new', restored).T!.count).toBe(25);
  });
});

describe('aborting with an AbortSignal', () => {
  it('stops a backup and a restore promptly, leaving nothing behind, and progress is monotonic', async () => {
    const data = makeDb('new', 60000, '--index');
    const dest = join(tmp(), 'full');
    const events: { bytesDone: bigint; bytesTotal: bigint; filesDone: number; filesTotal: number }[] = [];
    const base = join(tmp(), 'base');
    const full = await fullBackup(data, base, { onProgress: (e) => events.push(e) });
    expect(events.length).toBe(full.files.length);
    events.forEach((e, i) => i > 0 && expect(e.bytesDone).toBeGreaterThan(events[i - 1]!.bytesDone));
    expect(events.at(-1)).toMatchObject({ filesDone: full.files.length, bytesDone: events.at(-1)!.bytesTotal });

    const controller = new AbortController();
    const aborted = rejectsWith(fullBackup(data, dest, { signal: controller.signal, concurrency: 1 }), 'ERR_ABORTED');
    setTimeout(() => controller.abort(), 5);
    const started = performance.now();
    await aborted;
    expect(performance.now() - started).toBeLessThan(1000); // ~100 ms is the aim; CI machines vary
    expectNoLeftovers(dest);
    expect(existsSync(join(data, 'LOCK'))).toBe(false);

    const restoreController = new AbortController();
    const into = join(tmp(), 'r');
    const restoring = rejectsWith(
      restore(base, into, { signal: restoreController.signal, concurrency: 1 }),
      'ERR_ABORTED',
    );
    setTimeout(() => restoreController.abort(), 5);
    await restoring;
    expectNoLeftovers(into);
    const already = AbortSignal.abort();
    await rejectsWith(restore(base, into, { signal: already }), 'ERR_ABORTED');
  });
});

/**
 * One operation's events: totals fixed, counts never decreasing nor above
 * the totals, the last exactly at the totals; an event inside files names a
 * file not yet finished; and at least two events fall strictly inside the
 * span of `big` (the `size` bytes before its own final event), before that event.
 */
function expectProgressInside(what: string, events: ProgressEvent[], big: string, size?: bigint): void {
  const last = events.at(-1)!;
  expect(last, what).toMatchObject({ filesDone: last.filesTotal, bytesDone: last.bytesTotal });
  const finished = new Set<string>();
  let bigEnd = -1;
  events.forEach((e, i) => {
    const before = events[i - 1] ?? { filesDone: 0, bytesDone: 0n };
    expect([e.filesTotal, e.bytesTotal], what).toEqual([last.filesTotal, last.bytesTotal]);
    expect(e.filesDone, what).toBeGreaterThanOrEqual(before.filesDone);
    expect(e.bytesDone, what).toBeGreaterThanOrEqual(before.bytesDone);
    expect(e.bytesDone, what).toBeLessThanOrEqual(e.bytesTotal);
    if (e.filesDone === before.filesDone) {
      expect(finished.has(e.file), `${what}: ${e.file} is in progress`).toBe(false);
      return;
    }
    finished.add(e.file);
    if (e.file === big && bigEnd < 0) bigEnd = i;
  });
  expect(bigEnd, `${what}: ${big} finished`).toBeGreaterThanOrEqual(0);
  const end = events[bigEnd]!.bytesDone;
  const start = end - (size ?? last.bytesTotal);
  const inside = events.slice(0, bigEnd).filter((e) => e.bytesDone > start && e.bytesDone < end);
  expect.soft(inside.length, `${what}: events inside ${big}`).toBeGreaterThanOrEqual(2); // soft: names every operation
}

describe('progress inside large files', () => {
  it('every long operation reports at least every 64 MiB inside a 200 MiB heap', async () => {
    const data = join(tmp(), 'data');
    const heap = BigInt(fixture('new', 'bulk', data, '--mib', 200, '--pad', 1000).heap_bytes);
    expect(heap).toBeGreaterThan(192n << 20n); // three 64 MiB steps inside it
    const root = tmp();
    const run = async (what: string, work: (onProgress: (e: ProgressEvent) => void) => Promise<unknown>) => {
      const events: ProgressEvent[] = [];
      await work((e) => events.push(e));
      return { what, events };
    };
    const full = join(root, 'full');
    const plain = [
      await run('backup', (onProgress) => fullBackup(data, full, { onProgress })),
      await run('incremental backup', (onProgress) => incrementalBackup(data, full, join(root, 'inc'), { onProgress })),
      await run('restore', (onProgress) => restore(full, join(root, 'r'), { onProgress })),
      await run('verify', (onProgress) => verifyBackup(full, { onProgress })),
    ];
    // Uncompressed, so that the packs a verify reads are as large as the heap.
    const repo = (await Repository.init(join(root, 'repo'), { compression: 'none' })) as PackedRepository;
    try {
      const stored = [
        await run('repository backup', (onProgress) => repo.backup(data, { onProgress })),
        await run('repository restore', (onProgress) => repo.restore(join(root, 'rr'), { onProgress })),
        await run('repository export', (onProgress) => repo.export(join(root, 'ex'), { onProgress })),
      ];
      for (const { what, events } of [...plain, ...stored]) expectProgressInside(what, events, 'T.heap', heap);
      const { events } = await run('repository verify', (onProgress) => repo.verify({ onProgress }));
      expectProgressInside('repository verify', events, 'data/');
      expect(events.at(-1)!.bytesTotal).toBeGreaterThan(heap);
    } finally {
      repo.close();
    }
  });
});
