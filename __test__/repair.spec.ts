// Damage that verify finds is healed, on a local directory and on every S3
// server: the next backup stores the damaged chunks again from its source
// (never "0 B stored" against a chunk that cannot be read), that backup and
// the older ones that need the same content restore, and `repair` drops what
// is gone, keeps what is intact and names the backups it cannot make whole.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackedRepository, fullBackup, type BackupRecord } from '../index.js';
import { s3Request } from '../scripts/s3/servers.mjs';
import { CLI, dataHashes, insertRows, makeDb, rejectsWith, report, tmp } from './helpers.js';
import { envFor, freshPrefix, listKeys, parseS3Url, s3Targets, type S3Target } from './s3/targets.js';

/** Raw access to a repository's objects, around the product: to damage them. */
interface Backend {
  name: string;
  env: Record<string, string>;
  fresh(): string;
  /** Keys relative to the repository, sorted. */
  keys(url: string): Promise<string[]>;
  get(url: string, rel: string): Promise<Buffer>;
  put(url: string, rel: string, body: Buffer): Promise<void>;
  remove(url: string, rel: string): Promise<void>;
}

const local: Backend = {
  name: 'a local directory',
  env: {},
  fresh: () => join(tmp(), 'repo'),
  keys: async (dir) =>
    (readdirSync(dir, { recursive: true }) as string[]).filter((p) => statSync(join(dir, p)).isFile()).sort(),
  get: async (dir, rel) => readFileSync(join(dir, rel)),
  put: async (dir, rel, body) => {
    // A new inode, as another program damaging the file would leave it.
    rmSync(join(dir, rel), { force: true });
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), body, { mode: 0o600 });
  },
  remove: async (dir, rel) => rmSync(join(dir, rel)),
};

function s3(t: S3Target): Backend {
  const at = (url: string, rel: string) => {
    const { bucket, prefix } = parseS3Url(url);
    return { bucket, key: `${prefix}/${rel}` };
  };
  return {
    name: t.name,
    env: envFor(t),
    fresh: () => freshPrefix(t, 'repair'),
    keys: async (url) => {
      const { prefix } = parseS3Url(url);
      return (await listKeys(t, `${url}/`)).map((k) => k.slice(prefix.length + 1)).sort();
    },
    get: async (url, rel) => {
      const r = await s3Request(t, 'GET', at(url, rel));
      if (r.status !== 200) throw new Error(`GET ${url}/${rel}: ${r.status}`);
      return r.body;
    },
    put: async (url, rel, body) => {
      const r = await s3Request(t, 'PUT', { ...at(url, rel), body });
      if (r.status !== 200) throw new Error(`PUT ${url}/${rel}: ${r.status}`);
    },
    remove: async (url, rel) => {
      const r = await s3Request(t, 'DELETE', at(url, rel));
      if (r.status !== 204 && r.status !== 200) throw new Error(`DELETE ${url}/${rel}: ${r.status}`);
    },
  };
}

const BACKENDS: Backend[] = [local, ...s3Targets().map(s3)];

type Damage = 'flip' | 'truncate' | 'delete';
async function damage(b: Backend, url: string, rel: string, how: Damage): Promise<void> {
  if (how === 'delete') return b.remove(url, rel);
  const bytes = Buffer.from(await b.get(url, rel));
  if (how === 'flip') {
    bytes[Math.floor(bytes.length / 3)]! ^= 0x5a;
    return b.put(url, rel, bytes);
  }
  return b.put(url, rel, bytes.subarray(0, Math.floor(bytes.length / 2)));
}

/** The keys under `prefix` that `after` has and `before` had not. */
const added = (before: string[], after: string[], prefix: string) =>
  after.filter((k) => k.startsWith(prefix) && !before.includes(k));

/** A plain full backup of `data` as it is now: the reference for a restore of this moment. */
async function plainNow(data: string): Promise<Record<string, string>> {
  const dir = join(tmp(), 'plain');
  await fullBackup(data, dir);
  return dataHashes(dir);
}

/** Backup `id` restores to exactly `want`, and the engine opens it and finds `rows` rows in T. */
async function expectRestores(repo: PackedRepository, id: string, want: Record<string, string>, rows: number) {
  const dest = join(tmp(), 'restored');
  await repo.restore(dest, { asOf: id });
  expect(dataHashes(dest)).toEqual(want);
  expect(report('new', dest).T!.count).toBe(rows);
}

function cli(b: Backend, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...b.env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const bad = (results: Awaited<ReturnType<PackedRepository['verify']>>) =>
  results.filter((r) => !r.report.ok).map((r) => r.id);

// The API reads the AWS environment: each backend's tests set it, and the file's end puts it back.
const saved = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('AWS_')));
function useEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, saved, env);
}
afterAll(() => useEnv({}));
delete process.env.POWDB_BACKUP_PASSWORD;

const ROWS = 4000;
const CASES: { how: Damage; type: 'full' | 'incr' | 'diff' }[] = [
  { how: 'flip', type: 'full' },
  { how: 'truncate', type: 'incr' },
  { how: 'delete', type: 'diff' },
];

describe.each(BACKENDS.map((b) => [b.name, b] as const))('damage on %s', (_name, b) => {
  beforeAll(() => useEnv(b.env));

  it.each(CASES)(
    'a pack, $how: verify records it, the next $type backup stores its chunks again, every backup restores, repair clears it',
    async ({ how, type }) => {
      const data = makeDb('new', ROWS, '--index');
      const url = b.fresh();
      const repo = await PackedRepository.init(url);
      try {
        const k0 = await b.keys(url);
        const a = await repo.backup(data);
        const want = await plainNow(data);
        const [pack] = added(k0, await b.keys(url), 'data/');
        await damage(b, url, pack!, how);

        expect(bad(await repo.verify())).toEqual(['repository', a.id]);
        expect(await b.keys(url)).toContainEqual(expect.stringMatching(/^damage\//));

        // The source still holds every chunk: the next backup stores the damaged ones again.
        const next: BackupRecord = await repo.backup(data, { type });
        expect(next.type).toBe(type);
        expect(next.stored_bytes).toBeGreaterThan(0n);
        await expectRestores(repo, next.id, want, ROWS);
        await expectRestores(repo, a.id, want, ROWS); // same content: the older backup is whole again
        // Only the damaged pack is still reported, until repair.
        expect(bad(await repo.verify())).toEqual(['repository']);

        const r = cli(b, 'repair', '--repo', url, '--json');
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout);
        // The new backup holds what was lost; what was intact moved to a new pack.
        expect(out).toMatchObject({ packs_damaged: 1, packs_removed: 1, chunks_lost: 0, damage_records_cleared: 1 });
        expect(out.backups).toEqual([]);
        expect(out.chunks_salvaged > 0).toBe(how !== 'delete');
        const keys = await b.keys(url);
        expect(keys).not.toContain(pack);
        expect(keys.filter((k) => k.startsWith('damage/'))).toEqual([]);
        expect(bad(await repo.verify())).toEqual([]);
        for (const id of [a.id, next.id]) await expectRestores(repo, id, want, ROWS);
      } finally {
        repo.close();
      }
    },
    180_000,
  );

  it('content no source holds any more: repair names the backup it cannot make whole, keeps it and the rest restorable', async () => {
    const data = makeDb('new', ROWS, '--index');
    const url = b.fresh();
    const repo = await PackedRepository.init(url);
    try {
      const a = await repo.backup(data);
      const wantA = await plainNow(data);
      insertRows('new', data, ROWS, 400);
      const k1 = await b.keys(url);
      const inc = await repo.backup(data);
      const [pack] = added(k1, await b.keys(url), 'data/');
      await b.remove(url, pack!);
      // The source moves on: the increment's pages are rewritten.
      insertRows('new', data, ROWS + 400, 400);

      expect(bad(await repo.verify())).toEqual(['repository', inc.id]);
      const r = cli(b, 'repair', '--repo', url);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`backup ${inc.id} needs chunks that are gone: `);
      expect(r.stdout).toMatch(/T\.heap \(\d+ chunks?\)/);
      expect(r.stdout).toContain('these backups are kept');
      // A clean repository now, but for the increment, which is kept and named by verify.
      expect(bad(await repo.verify())).toEqual([inc.id]);
      expect((await repo.list()).map((x) => x.id)).toEqual([a.id, inc.id]);
      await rejectsWith(repo.restore(join(tmp(), 'lost'), { asOf: inc.id }), 'ERR_MISSING_FILE');
      await expectRestores(repo, a.id, wantA, ROWS);
      const c = await repo.backup(data);
      const wantC = await plainNow(data);
      await expectRestores(repo, c.id, wantC, ROWS + 800);
      // Expire prunes beside the kept increment, whose lists are gone.
      expect((await repo.expire({ retainFull: 2 })).removed).toEqual([]);
      await expectRestores(repo, a.id, wantA, ROWS);
      await expectRestores(repo, c.id, wantC, ROWS + 800);
      // A second repair finds nothing to do and says so, still naming the increment.
      const again = cli(b, 'repair', '--repo', url, '--json');
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ packs_damaged: 0, packs_removed: 0, chunks_lost: 0 });
      expect(JSON.parse(again.stdout).backups.map((x: { id: string }) => x.id)).toEqual([inc.id]);
    } finally {
      repo.close();
    }
  }, 180_000);

  it('a repository without damage: repair says nothing was damaged and changes nothing', async () => {
    const data = makeDb('new', 500);
    const url = b.fresh();
    const repo = await PackedRepository.init(url);
    await repo.backup(data);
    repo.close();
    const before = await b.keys(url);
    const r = cli(b, 'repair', '--repo', url);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('nothing was damaged; nothing changed');
    expect(await b.keys(url)).toEqual(before);
  });
});
