// Readers' and removers' holds (crate/src/core/repo/holds.rs), on a local
// directory and on each S3 server: expire removes nothing while a restore in
// another process reads, a restore is refused while an expire removes, and
// holds left by killed processes or lapsed leases stop nobody.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackedRepository } from '../../index.js';
import { s3Request } from '../../scripts/s3/servers.mjs';
import { CLI, dataHashes, insertRows, makeDb, rejectsWith, tmp } from '../helpers.js';
import { envFor, freshPrefix, listKeys, parseS3Url, s3Targets } from './targets.js';

const CHILD = join(import.meta.dirname, '..', 'hold-child.mjs');

interface Place {
  name: string;
  /** A new, empty repository location. */
  location(label: string): string;
  env: Record<string, string>;
  /** Every object key of the repository at `location`, relative to it. */
  keys(location: string): Promise<string[]>;
  /** Writes an object as another process would have. */
  plant(location: string, key: string, body: string): Promise<void>;
}

function walk(dir: string, root = dir): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p, root) : [relative(root, p)];
  });
}

const local: Place = {
  name: 'a local directory',
  location: () => join(tmp(), 'repo'),
  env: {},
  keys: async (location) => walk(location),
  plant: async (location, key, body) => {
    mkdirSync(dirname(join(location, key)), { recursive: true });
    writeFileSync(join(location, key), body);
  },
};

const onS3 = s3Targets().map((t): Place => ({
  name: t.name,
  location: (label) => freshPrefix(t, label),
  env: envFor(t),
  keys: async (location) => {
    const { prefix } = parseS3Url(location);
    return (await listKeys(t, location)).map((k) => k.slice(prefix.length + 1));
  },
  plant: async (location, key, body) => {
    const { bucket, prefix } = parseS3Url(location);
    const r = await s3Request(t, 'PUT', { bucket, key: `${prefix}/${key}`, body });
    if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status}`);
  },
}));

const children: ChildProcess[] = [];
const saved = { ...process.env };
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
});

/** A restore in another process, stopped while it holds the repository (see hold-child.mjs). */
async function pausedReader(place: Place, location: string) {
  const dest = join(tmp(), 'restored');
  return { dest, ...(await paused(place, [location, dest])) };
}

/** An operation of hold-child.mjs in another process, stopped at its first progress event. */
async function paused(place: Place, args: string[]) {
  const go = join(tmp(), 'go');
  const child = spawn(process.execPath, [CHILD, ...args, go], {
    env: { ...process.env, ...place.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('reading\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the child exited (${code}) before reading: ${err}`)));
  });
  return {
    pid: child.pid!,
    finish: async () => {
      writeFileSync(go, '');
      expect(await exited, err).toBe(0);
      expect(out).toContain('done\n');
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const holdsOf = async (place: Place, location: string) =>
  (await place.keys(location)).filter((k) => k.startsWith('locks/'));

describe.each([local, ...onS3].map((p) => [p.name, p] as const))('holds on %s', (_name, place) => {
  it('expire removes nothing while a restore in another process reads, and goes on once it ends or is killed', async () => {
    Object.assign(process.env, place.env);
    const data = makeDb('new', 1500, '--index');
    const location = place.location('holds-expire');
    const repo = await PackedRepository.init(location);
    const first = await repo.backup(data);
    insertRows('new', data, 1500, 200);
    const second = await repo.backup(data, { type: 'full' });
    const atSecond = dataHashes(data);

    const reader = await pausedReader(place, location);
    expect(await holdsOf(place, location)).toHaveLength(1);
    expect((await repo.info()).holds).toEqual([
      { kind: 'shared', operation: 'restore', host: expect.any(String), pid: reader.pid, until: expect.any(String) },
    ]);
    const refused = await rejectsWith(repo.expire({ retainFull: 1 }), 'ERR_REPO_LOCKED');
    expect(refused.message).toMatch(new RegExp(`in use by restore \\(host [^,]+, pid ${reader.pid},`));
    expect((await repo.list()).map((r) => r.id)).toEqual([first.id, second.id]);
    const shown = spawnSync(process.execPath, [CLI, 'info', '--repo', location], {
      encoding: 'utf8',
      env: { ...process.env, ...place.env },
    });
    expect(shown.stdout).toMatch(
      new RegExp(`held by restore \\(shared\\) on host \\S+, pid ${reader.pid}, lease until `),
    );
    // Readers share: a verify goes on beside the restore.
    expect((await repo.verify()).every((v) => v.report.ok)).toBe(true);
    await reader.finish();
    expect(dataHashes(reader.dest)).toEqual(atSecond);
    expect(await holdsOf(place, location)).toEqual([]);
    expect('holds' in (await repo.info())).toBe(false);

    expect((await repo.expire({ retainFull: 1 })).removed).toEqual([first.id]);

    // A reader killed while it held the repository: its hold names a dead process of this machine.
    const killed = await pausedReader(place, location);
    await killed.kill();
    expect(await holdsOf(place, location)).toHaveLength(1);
    expect('holds' in (await repo.info())).toBe(false); // not live, and info removes nothing
    expect(await holdsOf(place, location)).toHaveLength(1);
    insertRows('new', data, 1700, 100);
    const third = await repo.backup(data, { type: 'full' });
    expect((await repo.expire({ retainFull: 1 })).removed).toEqual([second.id]);
    expect(await holdsOf(place, location)).toEqual([]);
    expect((await repo.list()).map((r) => r.id)).toEqual([third.id]);
    repo.close();
  });

  it('a restore is refused while an expire elsewhere removes, and goes on once that hold lapses', async () => {
    Object.assign(process.env, place.env);
    const data = makeDb('new', 300);
    const location = place.location('holds-restore');
    const repo = await PackedRepository.init(location);
    await repo.backup(data);
    const plant = (owner: string, expires: number) =>
      place.plant(
        location,
        `locks/${owner}`,
        JSON.stringify({
          owner,
          kind: 'exclusive',
          operation: 'expire',
          host: 'elsewhere',
          machine: 'another-boot/pid:[1]',
          pid: 4242,
          expires_unix_secs: expires,
        }),
      );
    await plant('a'.repeat(64), Math.floor(Date.now() / 1000) + 600);
    const refused = await rejectsWith(repo.restore(join(tmp(), 'refused')), 'ERR_REPO_LOCKED');
    expect(refused.message).toMatch(/held alone by expire \(host elsewhere, pid 4242,/);
    expect(await holdsOf(place, location)).toEqual([`locks/${'a'.repeat(64)}`]); // its own was withdrawn
    await rejectsWith(repo.verify(), 'ERR_REPO_LOCKED');

    await plant('a'.repeat(64), Math.floor(Date.now() / 1000) - 10);
    const dest = join(tmp(), 'restored');
    await repo.restore(dest);
    expect(dataHashes(dest)).toEqual(dataHashes(data));
    expect(await holdsOf(place, location)).toEqual([]);
    repo.close();
  });
});

// A backup holds the repository shared (holds.rs): beside other backups, never beside an expire.
describe.each([local, ...onS3].map((p) => [p.name, p] as const))("a backup's hold on %s", (_name, place) => {
  it('refuses an expire, or makes it wait (--lock-wait); a killed backup stops nobody', async () => {
    Object.assign(process.env, place.env);
    const data = makeDb('new', 1500, '--index');
    const location = place.location('backup-hold');
    const repo = await PackedRepository.init(location);
    const first = await repo.backup(data);
    await repo.backup(data, { type: 'full' });
    insertRows('new', data, 1500, 200);

    const writer = await paused(place, ['backup', location, data]);
    expect(await holdsOf(place, location)).toHaveLength(1);
    expect(await place.keys(location)).not.toContain('LOCK');
    const refused = await rejectsWith(repo.expire({ retainFull: 1 }), 'ERR_REPO_LOCKED');
    expect(refused.message).toMatch(new RegExp(`in use by backup \\(host [^,]+, pid ${writer.pid},.*--lock-wait`));
    // Waiting: the backup ends meanwhile, then expire goes on (the backup's increment is kept with its full).
    let done = false;
    const waiting = repo.expire({ retainFull: 1, lockWaitMs: 60_000 }).finally(() => (done = true));
    await new Promise((r) => setTimeout(r, 1500));
    expect(done).toBe(false);
    await writer.finish();
    expect((await waiting).removed).toEqual([first.id]);
    expect(await repo.list()).toHaveLength(2);

    // A backup killed while it holds the repository: its hold names a dead process of this machine.
    const killed = await paused(place, ['backup', location, data]);
    await killed.kill();
    expect(await holdsOf(place, location)).toHaveLength(1);
    expect((await repo.expire({ retainFull: 1 })).removed).toEqual([]);
    expect(await holdsOf(place, location)).toEqual([]);
    const dest = join(tmp(), 'restored');
    await repo.restore(dest);
    expect(dataHashes(dest)).toEqual(dataHashes(data));
    expect((await repo.verify()).every((v) => v.report.ok)).toBe(true);
    repo.close();
  });
});

// Key removal takes the repository alone like expire: refused beside a backup, or waiting for it with lockWaitMs.
describe.each([local, ...onS3].map((p) => [p.name, p] as const))(
  'key removal beside a backup on %s',
  (_name, place) => {
    it('is refused, or waits (--lock-wait), and then removes the key', async () => {
      const password = 'hold password';
      Object.assign(process.env, place.env, { POWDB_BACKUP_PASSWORD: password });
      try {
        const data = makeDb('new', 1500, '--index');
        const location = place.location('key-hold');
        const repo = await PackedRepository.init(location, { encrypt: true, password, kdf: { mKib: 64, t: 1, p: 1 } });
        await repo.backup(data);
        const other = await repo.addKey('another password');
        insertRows('new', data, 1500, 200);

        const writer = await paused(place, ['backup', location, data]);
        const refused = await rejectsWith(repo.removeKey(other), 'ERR_REPO_LOCKED');
        expect(refused.message).toMatch(/in use by backup/);
        let done = false;
        const waiting = repo.removeKey(other, { lockWaitMs: 60_000 }).finally(() => (done = true));
        await new Promise((r) => setTimeout(r, 1500));
        expect(done).toBe(false);
        await writer.finish();
        await waiting;
        expect((await repo.listKeys()).map((k) => k.id)).not.toContain(other);
        expect(await repo.list()).toHaveLength(2);
        repo.close();
      } finally {
        delete process.env.POWDB_BACKUP_PASSWORD;
      }
    });
  },
);

describe('a repository this process cannot write to', () => {
  it('is read without a hold, with a warning', async (ctx) => {
    const data = makeDb('new', 300);
    const location = join(tmp(), 'repo');
    const repo = await PackedRepository.init(location);
    await repo.backup(data);
    // Where holds go, nothing can be created: root is stopped only by an immutable directory.
    const locks = join(location, 'locks');
    mkdirSync(locks, { mode: 0o700, recursive: true }); // a backup's hold made it already
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      const r = spawnSync('chattr', ['+i', locks], { encoding: 'utf8' });
      if (r.status !== 0) ctx.skip(`chattr +i is not available here: ${r.error?.message ?? r.stderr}`);
    } else chmodSync(locks, 0o555);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const dest = join(tmp(), 'restored');
      await repo.restore(dest);
      await new Promise((r) => setImmediate(r));
      expect(dataHashes(dest)).toEqual(dataHashes(data));
      // A remover gets no such leave: without its hold it removes nothing.
      await rejectsWith(repo.expire({ retainFull: 1 }), asRoot ? 'EPERM' : 'EACCES');
    } finally {
      process.off('warning', onWarning);
      if (asRoot) spawnSync('chattr', ['-i', locks]);
      else chmodSync(locks, 0o700);
    }
    expect(warnings.join('\n')).toMatch(/restore reads without a hold, as it cannot write one \((EPERM|EACCES)/);
    expect(readdirSync(locks)).toEqual([]);
    expect(await repo.list()).toHaveLength(1);
    repo.close();
  });
});
