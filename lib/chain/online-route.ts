// How an online increment into a backup directory is recovered.
import type { LiveServer } from '../source/backup-source.js';
import type { ChainState } from './chain.js';

/**
 * An online increment on a chain that holds index files is recovered by the engine, which writes them anew: a copy
 * recovered by our redo holds none, and a chain restore by the reference crate (which records no removals) would
 * keep the base's, older than the heaps; the engine trusts an index file it finds. A route the user chose stands.
 */
export function liveServerFor(base: ChainState, server: LiveServer | undefined): LiveServer | undefined {
  if (!server || (server.finalize ?? 'auto') !== 'auto') return server;
  const indexed = [...base.lengths.keys()].some((name) => /\.e?idx$/.test(name));
  return indexed ? { ...server, finalize: 'engine' } : server;
}
