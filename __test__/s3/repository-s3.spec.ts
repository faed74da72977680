// Format-2 repositories on real S3-compatible servers (SeaweedFS and
// versitygw, started by global-setup.ts; or the endpoint POWDB_S3_ENDPOINT
// names): the same repository logic as on a local directory, through the
// object-store backend.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PackedRepository, Repository, fullBackup, verifyBackup } from '../../index.js';
import { s3Request } from '../../scripts/s3/servers.mjs';
import {
  CLI,
  dataHashes,
  dump,
  insertRows,
  makeDb,
  rejectsWith,
  report,
  segments,
  syncEnable,
  tmp,
  warningsOf,
} from '../helpers.js';
import { envFor, freshPrefix, listKeys, parseS3Url, s3Targets, type S3Target } from './targets.js';

const KDF = { mKib: 64, t: 1, p: 1 };
const PASSWORD = 'object storage password';
const targets = s3Targets();

/** Points the product (it reads the AWS environment) at one target for a test. */
function useTarget(t: S3Target, overrides: Record<string, string> = {}): void {
  for (const k of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_ENDPOINT', 'AWS_DEFAULT_REGION']) delete process.env[k];
  Object.assign(process.env, envFor(t), overrides);
}

const saved = { ...process.env };
beforeEach(() => {
  delete process.env.POWDB_BACKUP_PASSWORD;
});
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
});

async function restoredHashes(repo: Repository, asOf?: string): Promise<Record<string, string>> {
  const dest = join(tmp(), 'restored');
  await repo.restore(dest, { asOf });
  return dataHashes(dest);
}

describe.each(targets.map((t) => [t.name, t] as const))('a repository on %s', (_name, target) => {
  it('backs up, restores every backup byte-identical, verifies, exports and prunes (encrypted)', async () => {
    useTarget(target);
    const url = freshPrefix(target, 'roundtrip');
    const data = makeDb('new', 3000, '--index');
    const repo = await PackedRepository.init(url, { encrypt: true, password: PASSWORD, kdf: KDF });
    expect(await repo.conditionalWrites()).toBe(true); // both servers answer 412 to If-None-Match on an existing key
    const first = await repo.backup(data);
    const atFirst = dataHashes(data);
    insertRows('new', data, 3000, 300);
    const second = await repo.backup(data);
    const atSecond = dataHashes(data);
    expect(second.stored_bytes).toBeLessThan(first.stored_bytes); // only what is new

    const reader = await Repository.open(url, { password: PASSWORD });
    expect((await reader.list()).map((r) => r.id)).toEqual([first.id, second.id]);
    const { totals } = await reader.info();
    expect(totals).toMatchObject({ backups: 2, conditional_writes: true });
    expect(await restoredHashes(reader, first.id)).toEqual(atFirst);
    expect(await restoredHashes(reader)).toEqual(atSecond);
    expect((await reader.verify()).filter((v) => !v.report.ok)).toEqual([]);
    const exported = join(tmp(), 'exported');
    await (reader as PackedRepository).export(exported, { asOf: first.id });
    expect((await verifyBackup(exported)).ok).toBe(true);

    // No plaintext on the server: the table name is in every catalog.bin.
    const keys = await listKeys(target, url);
    const { bucket } = parseS3Url(url);
    for (const key of keys) {
      const body = (await s3Request(target, 'GET', { bucket, key })).body;
      expect(body.includes(Buffer.from('T_id')), key).toBe(false);
    }

    insertRows('new', data, 3300, 100);
    const third = await repo.backup(data, { type: 'full' });
    const atThird = dataHashes(data);
    const expired = await repo.expire({ retainFull: 1 });
    expect(expired.removed).toEqual([first.id, second.id]);
    expect(expired.pruned!.bytesFreed).toBeGreaterThan(0n);
    expect(await restoredHashes(repo, third.id)).toEqual(atThird);
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    expect(await listKeys(target, url)).not.toContain(`${parseS3Url(url).prefix}/LOCK`);
    repo.close();
    reader.close();
  });

  it('the CLI takes s3:// wherever it takes a repository, and --endpoint', () => {
    const url = freshPrefix(target, 'cli');
    const data = makeDb('new', 500);
    // The endpoint from --endpoint (not AWS_ENDPOINT_URL), the credentials from the environment.
    const { AWS_ENDPOINT_URL, ...rest } = envFor(target);
    const env = { ...process.env, ...rest };
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args, '--endpoint', AWS_ENDPOINT_URL!], { encoding: 'utf8', env });
    const init = run('init', url);
    expect(init.status, init.stderr).toBe(0);
    expect(run('backup', data, '--repo', url).status).toBe(0);
    const info = run('info', '--repo', url, '--json');
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout).backups).toHaveLength(1);
    const dest = join(tmp(), 'r');
    expect(run('restore', '--repo', url, dest).status).toBe(0);
    expect(report('new', dest).T!.count).toBe(500);
    expect(run('verify', '--repo', url).status).toBe(0);
  });

  it('a live writer lock refuses an expire, not a backup; a lock whose lease ran out is taken over', async () => {
    useTarget(target);
    const url = freshPrefix(target, 'lock');
    const data = makeDb('new', 200);
    const repo = await PackedRepository.init(url);
    const { bucket, prefix } = parseS3Url(url);
    const plant = (expires: number) =>
      s3Request(target, 'PUT', {
        bucket,
        key: `${prefix}/LOCK`,
        body: JSON.stringify({ owner: 'other', host: 'elsewhere', pid: 4242, expires_unix_secs: expires }),
      });
    await plant(Math.floor(Date.now() / 1000) + 600);
    await repo.backup(data);
    const refused = await rejectsWith(repo.expire({ retainFull: 1 }), 'ERR_REPO_LOCKED');
    expect(refused.message).toMatch(/host elsewhere, pid 4242/);
    expect(await repo.list()).toHaveLength(1);

    await plant(Math.floor(Date.now() / 1000) - 10);
    const { warnings } = await warningsOf(() => repo.expire({ retainFull: 1 }));
    expect(warnings.join('\n')).toMatch(/took over the lock .*\(host elsewhere, pid 4242/);
    expect(await repo.list()).toHaveLength(1);
    expect(await listKeys(target, url)).not.toContain(`${prefix}/LOCK`);
    repo.close();
  });

  it('without conditional writes (as on servers that ignore them) an existing object is still never overwritten', async () => {
    useTarget(target);
    const url = freshPrefix(target, 'noconditional');
    const data = makeDb('new', 200);
    const repo = await PackedRepository.init(url, { noConditionalWrites: true });
    expect(await repo.conditionalWrites()).toBe(false);
    expect((await repo.totals()).conditional_writes).toBe(false); // info says so
    const record = await repo.backup(data);
    const { bucket, prefix } = parseS3Url(url);
    const key = `${prefix}/snapshots/${record.id}`;
    const before = (await s3Request(target, 'GET', { bucket, key })).body;
    const { repoNative } = await import('../../lib/native/repo.js');
    const handle = (repo as unknown as { handle: { handle: number } }).handle.handle;
    await rejectsWith(repoNative.writeObject(handle, `snapshots/${record.id}`, Buffer.from('{}')), 'EEXIST');
    expect((await s3Request(target, 'GET', { bucket, key })).body.equals(before)).toBe(true);
    expect(await restoredHashes(repo)).toEqual(dataHashes(data));
    repo.close();
  });

  it.each([
    ['with conditional writes', false],
    ['without conditional writes', true],
  ])('two writers at once into one repository (%s): both back up, both restore', async (_, off) => {
    useTarget(target);
    const url = freshPrefix(target, 'race');
    const data = makeDb('new', 30_000, '--pad', '600');
    const copy = join(tmp(), 'copy');
    cpSync(data, copy, { recursive: true });
    await (await PackedRepository.init(url, { noConditionalWrites: off })).close();
    const [a, b] = await Promise.all([0, 1].map(() => PackedRepository.open(url, { noConditionalWrites: off })));
    const [one, two] = await Promise.all([a!.backup(data), b!.backup(copy)]);
    expect(await a!.list()).toHaveLength(2);
    for (const id of [one.id, two.id]) expect(await restoredHashes(a!, id)).toEqual(dataHashes(data));
    a!.close();
    b!.close();
  });

  it('an aborted backup stops its uploads, publishes nothing, and the next one succeeds', async () => {
    useTarget(target);
    const url = freshPrefix(target, 'abort');
    const data = makeDb('new', 30_000, '--pad', '600');
    const repo = await PackedRepository.init(url, { compression: 'none', concurrency: 2 });
    const controller = new AbortController();
    const started = Date.now();
    await rejectsWith(
      repo.backup(data, { signal: controller.signal, onProgress: () => controller.abort() }),
      'ERR_ABORTED',
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await repo.list()).toEqual([]);
    const keys = await listKeys(target, url);
    expect(keys.filter((k) => k.includes('/snapshots/') || k.includes('/index/'))).toEqual([]);
    expect(keys.some((k) => k.endsWith('/LOCK'))).toBe(false);
    await repo.backup(data);
    expect(await restoredHashes(repo)).toEqual(dataHashes(data));
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    repo.close();
  });

  it('reads credentials, region and endpoint from AWS_PROFILE in ~/.aws (the environment still wins)', () => {
    const url = freshPrefix(target, 'profile');
    const home = tmp();
    mkdirSync(join(home, '.aws'));
    writeFileSync(
      join(home, '.aws', 'credentials'),
      `[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong-secret\n[backup]\naws_access_key_id = ${target.accessKey}\naws_secret_access_key = ${target.secretKey}\n`,
    );
    writeFileSync(
      join(home, '.aws', 'config'),
      `[profile backup]\nregion = ${target.region}\nendpoint_url = ${target.endpoint}\n`,
    );
    const env: Record<string, string> = Object.fromEntries(
      Object.entries(process.env).filter(([k, v]) => !k.startsWith('AWS_') && v !== undefined),
    ) as Record<string, string>;
    Object.assign(env, { HOME: home, AWS_ALLOW_HTTP: 'true' });
    const run = (extra: Record<string, string>, ...args: string[]) =>
      spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...env, ...extra } });
    const init = run({ AWS_PROFILE: 'backup' }, 'init', url, '--concurrency', '8');
    expect(init.status, init.stderr).toBe(0);
    const data = makeDb('new', 300);
    expect(run({ AWS_PROFILE: 'backup' }, 'backup', data, '--repo', url).status).toBe(0);
    const info = run({ AWS_PROFILE: 'backup' }, 'info', '--repo', url, '--json');
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout).backups).toHaveLength(1);
    // The default profile's keys are wrong, and the environment's win over the profile's.
    expect(run({}, 'info', '--repo', url, '--endpoint', target.endpoint).stderr).toMatch(/ERR_STORE_AUTH|refused/);
    const envWins = run(
      { AWS_PROFILE: 'backup', AWS_SECRET_ACCESS_KEY: 'not-the-secret-1234', AWS_ACCESS_KEY_ID: target.accessKey },
      'info',
      '--repo',
      url,
    );
    expect(envWins.status).not.toBe(0);
    expect(envWins.stderr).not.toContain('not-the-secret-1234');
    const missing = run({ AWS_PROFILE: 'nope' }, 'info', '--repo', url);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('"nope"');
    const bad = run({ AWS_PROFILE: 'backup' }, 'info', '--repo', url, '--concurrency', '0');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--concurrency 0');
  });

  it('names the endpoint and bucket, never the secret: bad credentials, a missing bucket, an unreachable endpoint', async () => {
    const url = freshPrefix(target, 'errors');
    useTarget(target, { AWS_SECRET_ACCESS_KEY: 'wrong-secret-value-1234' });
    const auth = await rejectsWith(PackedRepository.init(url), 'ERR_STORE_AUTH');
    expect(auth.message).toContain(target.endpoint);
    expect(auth.message).toContain(parseS3Url(url).bucket);
    expect(auth.message).not.toContain('wrong-secret-value-1234');

    useTarget(target);
    const noBucket = await rejectsWith(PackedRepository.init('s3://no-such-bucket-here/x'), 'ERR_STORE_NO_BUCKET');
    expect(noBucket.message).toContain('no-such-bucket-here');
    expect(noBucket.message).not.toContain(target.secretKey);

    useTarget(target, { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    const started = Date.now();
    const down = await rejectsWith(PackedRepository.open(url), 'ERR_STORE_UNREACHABLE');
    expect(down.message).toContain('http://127.0.0.1:9');
    expect(Date.now() - started).toBeLessThan(45_000);
  }, 90_000);

  it('a delta restore downloads only the content it rewrites', async () => {
    useTarget(target);
    const url = freshPrefix(target, 'delta');
    const data = makeDb('new', 50_000, '--index');
    const repo = await PackedRepository.init(url, { compression: 'none' });
    const older = await repo.backup(data);
    const dest = join(tmp(), 'standby');
    await repo.restore(dest, { asOf: older.id });
    insertRows('new', data, 50_000, 500);
    const newer = await repo.backup(data);
    const r = await repo.restore(dest, { asOf: newer.id, delta: true });
    expect(dataHashes(dest)).toEqual(dataHashes(data));
    expect(r.delta!.bytesFetched).toBeGreaterThan(0n);
    expect(r.delta!.bytesFetched).toBeLessThan(newer.logical_bytes / 4n);
    repo.close();
  });

  it("archives a sync-enabled directory's WAL beside its backups and restores to any archived LSN", async () => {
    useTarget(target);
    const url = freshPrefix(target, 'pitr');
    const data = makeDb('new', 200, '--index');
    syncEnable(data);
    const repo = await PackedRepository.init(url, { encrypt: true, password: PASSWORD, kdf: KDF });
    await repo.backup(data);
    insertRows('new', data, 200, 5);
    const middle = { lsn: BigInt(segments(data).last_lsn!), rows: dump('new', data) };
    insertRows('new', data, 300, 5);
    const run = await repo.archive(data);
    expect(run.archived.length).toBe(2);
    expect((await repo.archive(data)).archived).toEqual([]);
    const newest = BigInt(segments(data).last_lsn!);
    for (const [lsn, expected] of [
      [middle.lsn, middle.rows],
      [newest, dump('new', data)],
    ] as const) {
      const dest = join(tmp(), 'pitr');
      expect((await repo.restore(dest, { asOf: lsn })).replay?.cut_lsn).toBe(lsn);
      expect(dump('new', dest)).toEqual(expected);
    }
    expect((await repo.verify()).filter((v) => !v.report.ok)).toEqual([]);
    expect((await listKeys(target, url)).some((k) => k.includes('/archive/'))).toBe(true);
    repo.close();
  });
});

describe('a full backup of the same data on local disk and on object storage', () => {
  it('restores the same bytes from both', async () => {
    const target = targets[0]!;
    useTarget(target);
    const data = makeDb('new', 1000, '--index');
    const plain = join(tmp(), 'plain');
    await fullBackup(data, plain);
    const repo = await PackedRepository.init(freshPrefix(target, 'same'));
    await repo.backup(data);
    expect(await restoredHashes(repo)).toEqual(dataHashes(plain));
    repo.close();
  });
});
