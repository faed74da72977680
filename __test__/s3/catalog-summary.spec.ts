// The catalog summary (lib/repo/summary.ts) on every backend: a local directory and each S3 server. A repository of
// many backups (one real backup of an engine-made database, then snapshots repeating it under new ids, written by the
// product's own snapshot writer, as the fleet benchmark makes them) is read once snapshot by snapshot, which writes
// a summary of their heads; later reads take what it holds, but only for snapshots the listing still names with the
// same size; verify never uses it; a damaged summary is ignored and replaced.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PackedRepository } from '../../index.js';
import { repoNative } from '../../lib/native/repo.js';
import { backupId } from '../../lib/repo/record.js';
import { SNAPSHOTS, formatSnapshot, type Snapshot } from '../../lib/repo/snapshot.js';
import { SUMMARIES, SUMMARY_AFTER } from '../../lib/repo/summary.js';
import { dataHashes, insertRows, makeDb, tmp } from '../helpers.js';
import { envFor, freshPrefix, s3Targets } from './targets.js';

const KDF = { mKib: 64, t: 1, p: 1 };
const PASSWORD = 'summary password';
const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  Object.assign(process.env, Object.fromEntries(Object.entries(saved).filter(([k]) => k.startsWith('AWS_'))));
});

const backends: { name: string; location: () => string }[] = [
  { name: 'local', location: () => join(tmp(), 'repo') },
  ...s3Targets().map((t) => ({
    name: t.name,
    location: () => {
      Object.assign(process.env, envFor(t));
      return freshPrefix(t, 'summary');
    },
  })),
];

/** `count` snapshots more, each repeating `base` (so each restores) under a new id a millisecond apart. */
async function repeat(repo: PackedRepository, base: Snapshot, count: number, from: number): Promise<string[]> {
  const start = Date.parse(base.record.created) + 1000;
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const at = new Date(start + from + i);
      const id = `${backupId(at, 'incr')}-${from + i}`;
      ids.push(id);
      const record = { ...base.record, id, type: 'incr' as const, parent: base.record.id, created: at.toISOString() };
      const s = { ...base, record, created_unix_secs: BigInt(Math.floor(at.getTime() / 1000)) };
      return repoNative.writeObject(repo.handle.handle, `${SNAPSHOTS}${id}`, Buffer.from(formatSnapshot(s)));
    }),
  );
  return ids;
}

const summaries = async (repo: PackedRepository) =>
  (await repoNative.listObjects(repo.handle.handle, SUMMARIES)).map((o) => o.key);

/** Replaces snapshot `id` with other bytes of the same stored size (a sealed object of as many bytes of junk). */
async function replaceSameSize(repo: PackedRepository, id: string): Promise<void> {
  const key = `${SNAPSHOTS}${id}`;
  const text = await repoNative.readObject(repo.handle.handle, key);
  await repoNative.deleteObject(repo.handle.handle, key);
  await repoNative.writeObject(repo.handle.handle, key, Buffer.alloc(text.length, 'x'));
}

describe('the catalog summary', () => {
  for (const backend of backends) {
    it(
      `${backend.name}: written after many snapshot reads, then used, checked against the listing, never by verify`,
      {
        timeout: 120_000,
      },
      async () => {
        const data = makeDb('new', 30, '--index');
        const location = backend.location();
        const repo = await PackedRepository.init(location, { encrypt: true, password: PASSWORD, kdf: KDF });
        const first = await repo.backup(data);
        const base = await repo.snapshot(first.id);
        const ids = [first.id, ...(await repeat(repo, base, SUMMARY_AFTER + 8, 0))];
        expect(await summaries(repo)).toEqual([]);

        // The first read takes each snapshot on its own, then writes a summary of them.
        const records = await repo.list();
        expect(records.map((r) => r.id).sort()).toEqual([...ids].sort());
        const [written] = await summaries(repo);
        expect(written).toMatch(new RegExp(`^${SUMMARIES}0*${ids.length}-[0-9a-f]{16}$`));

        // Used: a snapshot replaced by junk of the same size is still listed from the summary (as a cache does)...
        const masked = ids[5]!;
        await replaceSameSize(repo, masked);
        expect(await repo.list()).toEqual(records);
        // ...a restore of it reads the snapshot itself, and so does verify, which names it (the negative control:
        // without the summary the listing above would have lost it too).
        await expect(repo.restore(join(tmp(), 'masked'), { asOf: masked })).rejects.toMatchObject({
          code: 'ERR_BAD_MANIFEST',
        });
        const failing = (await repo.verify()).filter((r) => !r.report.ok);
        expect(failing.map((r) => r.id)).toEqual([masked]);
        expect(await summaries(repo), 'reads through the summary write no other').toEqual([written]);

        // Checked against the listing: a removed snapshot is gone, one of another size is read on its own.
        await repoNative.deleteObject(repo.handle.handle, `${SNAPSHOTS}${ids[7]}`);
        const resized = ids[9]!;
        await repoNative.deleteObject(repo.handle.handle, `${SNAPSHOTS}${resized}`);
        await repoNative.writeObject(repo.handle.handle, `${SNAPSHOTS}${resized}`, Buffer.from('{}'));
        const { heads: readable, unreadable } = await repo.readHeads();
        expect(readable.map((s) => s.record.id).sort()).toEqual(
          ids.filter((id) => id !== ids[7] && id !== resized).sort(),
        );
        expect(unreadable.map((u) => u.id)).toEqual([resized]);

        // New backups after it are read on their own, and restore like the rest.
        const later = await repo.backup(data, { type: 'full' });
        expect((await repo.list()).map((r) => r.id)).toContain(later.id);
        const out = join(tmp(), 'restored');
        await repo.restore(out, { asOf: ids.at(-1)! });
        expect(dataHashes(out)).toEqual(dataHashes(data));

        // A damaged summary is as good as none: every snapshot is read, and a new summary replaces it.
        await repoNative.deleteObject(repo.handle.handle, written!);
        await repoNative.writeObject(repo.handle.handle, written!, Buffer.from('not a summary'));
        const again = await repo.readHeads();
        const gone = [ids[7], resized, masked]; // the junk snapshot now reads as what it is
        expect(again.heads.map((s) => s.record.id).sort()).toEqual(
          [...ids.filter((id) => !gone.includes(id)), later.id].sort(),
        );
        expect(again.unreadable.map((u) => u.id).sort()).toEqual([masked, resized].sort());
        const now = await summaries(repo);
        expect(now).toHaveLength(1);
        expect(now[0]).not.toBe(written);
        repo.close();
      },
    );
  }

  for (const backend of backends) {
    it(
      `${backend.name}: info takes held bytes from it while the index they were counted with stands`,
      {
        timeout: 120_000,
      },
      async () => {
        const data = makeDb('new', 30, '--index');
        const repo = await PackedRepository.init(backend.location());
        const first = await repo.backup(data);
        const ids = [first.id, ...(await repeat(repo, await repo.snapshot(first.id), SUMMARY_AFTER + 8, 0))];
        insertRows('new', data, 30, 400);
        const second = await repo.backup(data, { type: 'full' });
        const heldOf = async () =>
          Object.fromEntries((await repo.info()).backups.map((b) => [b.id, b.held_bytes] as const));

        const counted = await heldOf(); // every snapshot read and counted, then a summary written
        expect(Object.keys(counted).sort()).toEqual([...ids, second.id].sort());
        expect(await summaries(repo)).toHaveLength(1);
        // Used: a snapshot replaced by junk of the same size keeps its held bytes from the summary.
        await replaceSameSize(repo, ids[3]!);
        expect(await heldOf()).toEqual(counted);

        // A prune removes index objects: the held bytes are counted again, as a repository without summary counts them.
        await repoNative.deleteObject(repo.handle.handle, `${SNAPSHOTS}${ids[3]}`);
        const { removed } = await repo.expire({ retainFull: 1 });
        expect(removed.sort()).toEqual(ids.filter((id) => id !== ids[3]).sort());
        const recounted = await heldOf();
        for (const key of await summaries(repo)) await repoNative.deleteObject(repo.handle.handle, key);
        expect(recounted).toEqual(await heldOf());
        // Not blind: the prune repacked what the second backup holds, so the held bytes kept from before would be wrong.
        expect(recounted[second.id]).not.toBe(counted[second.id]);
        repo.close();
      },
    );
  }
});
