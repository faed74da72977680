// Compiled (never run) by contract.spec.ts: what the README calls on the
// repository that Repository.open() returns must type-check.
import { Repository } from '../../index.js';

export async function calls(dir: string): Promise<void> {
  const repo = await Repository.open(dir, { password: 'x' });
  await repo.backup('/var/lib/powdb', { type: 'incr', sameDatabase: true });
  await repo.backup('/srv/shop', { source: 'shop' });
  await repo.restore('/tmp/restored', { asOf: '2026-12-07T08:44:04Z' });
  await repo.restore('/tmp/shop', { source: 'shop', asOf: 41200n });
  await repo.export('/tmp/plain', { asOf: 41200n });
  await repo.tables({ source: 'shop' });
  await repo.archive('/var/lib/powdb');
  await repo.verify();
  const keys: string[] = (await repo.info()).sources.map((s) => s.key);
  await repo.expire({ retainFull: 2, source: keys[0] });
  await repo.repair();
  await repo.addKey('another password');
  await repo.listKeys();
  await repo.removeKey('key-id');
  repo.close();
}
