/** Plain file names as backups may list them: no separators, no `.`/`..`. */
const PLAIN_NAME = /^[A-Za-z0-9_.-]+$/;

export function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name) && name !== '.' && name !== '..';
}

/** Byte order of ASCII names (what Rust's `String` ordering gives). */
export function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';
const HEAP = new RegExp(`^${IDENT}\\.heap$`);
const INDEX = new RegExp(`^${IDENT}\\.(idx|eidx)$`);
const WHOLE_FILES = new Set(['catalog.bin', 'catalog.lsn', 'views.bin', 'auth.json']);

/** Files of a data directory that a backup carries (powdb-format.md §1). */
export function isDurable(name: string): boolean {
  return WHOLE_FILES.has(name) || HEAP.test(name) || INDEX.test(name);
}

/** Heaps are diffed by page; every other durable file is copied whole. */
export function isHeap(name: string): boolean {
  return HEAP.test(name);
}

/** Prefix of staging directories: recognisable leftovers of an interrupted run. */
export const STAGING_MARK = '.powdb-partial-';
