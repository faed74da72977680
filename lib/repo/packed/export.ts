// One backup of a format-2 repository as a plain reference-format full backup.
import { join } from 'node:path';
import { cancellable } from '../../common/abort.js';
import { FORMAT_VERSION, MANIFEST_FILE, formatBackupManifest, type BackupManifest } from '../../chain/manifest.js';
import { repoNative } from '../../native/repo.js';
import { buildAtomically, writeFileDurably } from '../../common/staging.js';
import type { RestoreAsOf } from '../base.js';
import type { PackedContext } from './context.js';
import { layDown } from './lay-down.js';

/** Writes the backup `options.asOf` names into `dest` as a reference-format full backup, with its manifest. */
export async function exportBackup(
  repo: PackedContext,
  dest: string,
  options: RestoreAsOf,
): Promise<{ id: string; manifest: BackupManifest }> {
  await repoNative.refresh(repo.handle.handle);
  const snapshot = await repo.pickSnapshot(options.asOf, options.source);
  const record = snapshot.record;
  return cancellable(options.signal, (cancel) =>
    buildAtomically(dest, 'backup', async (staging) => {
      const hashes = await layDown(repo, snapshot, staging, true, options, cancel.token, () => cancel.check());
      const manifest: BackupManifest = {
        format_version: FORMAT_VERSION,
        created_unix_secs: snapshot.created_unix_secs,
        source_lsn: record.source_lsn,
        catalog_version: snapshot.catalog_version,
        ...(snapshot.sync ? { sync: snapshot.sync } : {}),
        files: snapshot.files.map((f, i) => ({ name: f.name, len: f.len, blake3_hex: hashes[i]! })),
      };
      cancel.check();
      await writeFileDurably(join(staging, MANIFEST_FILE), formatBackupManifest(manifest));
      return { id: record.id, manifest };
    }),
  );
}
