// A synthetic repository of many backups of many sources, made cheaply through
// the product's own code: one real full backup per source (each a copy of one
// small engine database, under a --source name), then increments that repeat a source's newest
// snapshot (the same files and chunk lists, so every backup restores) under new
// ids, parents and times, written as the backup code writes them (formatSnapshot,
// then the object store). What grows is the catalog, not the data.
//
//   node scripts/bench/fleet-synth.mjs <repo> <data dir> <backups> <sources> <copies dir>
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { PackedRepository } from '../../dist/index.js';
import { repoNative } from '../../dist/lib/native/repo.js';
import { backupId } from '../../dist/lib/repo/record.js';
import { SNAPSHOTS, formatSnapshot } from '../../dist/lib/repo/snapshot.js';

export const sourceName = (s) => `src-${String(s).padStart(3, '0')}`;

/** Makes the repository `dir`; returns each source's database (`copies`/<source name>). */
export async function synthesize(dir, data, backups, sources, copies) {
  const repo = await PackedRepository.init(dir);
  const dbs = [];
  try {
    const newest = [];
    for (let s = 0; s < Math.min(sources, backups); s++) {
      const copy = join(copies, sourceName(s));
      cpSync(data, copy, { recursive: true });
      dbs.push(copy);
      const record = await repo.backup(copy, { source: sourceName(s), type: 'full' });
      newest.push(await repo.snapshot(record.id));
    }
    // Increments after the real backups, a millisecond apart, round-robin over the sources.
    const start = Date.parse(newest.at(-1).record.created) + 1000;
    const writes = [];
    for (let k = newest.length; k < backups; k++) {
      const s = k % newest.length;
      const parent = newest[s];
      const at = new Date(start + k);
      const record = {
        ...parent.record,
        id: `${backupId(at, 'incr')}-${k}`,
        type: 'incr',
        parent: parent.record.id,
        base_source_lsn: parent.record.source_lsn,
        created: at.toISOString(),
        bytes: 0n,
        stored_bytes: 0n,
      };
      newest[s] = { ...parent, record, created_unix_secs: BigInt(Math.floor(at.getTime() / 1000)) };
      writes.push(newest[s]);
    }
    for (let i = 0; i < writes.length; i += 64) {
      await Promise.all(
        writes
          .slice(i, i + 64)
          .map((s) =>
            repoNative.writeObject(repo.handle.handle, `${SNAPSHOTS}${s.record.id}`, Buffer.from(formatSnapshot(s))),
          ),
      );
    }
    // A backup taken next must be the newest: wait out the synthetic times.
    const last = start + backups;
    if (Date.now() <= last) await new Promise((r) => setTimeout(r, last - Date.now() + 10));
  } finally {
    repo.close();
  }
  return dbs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, data, backups, sources, copies] = process.argv.slice(2);
  await synthesize(dir, data, Number(backups), Number(sources), copies);
}
