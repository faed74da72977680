// Types for powdb-server.mjs (used by __test__/online).

export const ROOT: string;
export const POWDB_VERSION: string;

export interface PowdbBinaries {
  server: string;
  cli: string;
}

/** Installs powdb-server and powdb-cli into .tmp/tools/powdb unless present (minutes, once). */
export function ensurePowdbServer(): Promise<PowdbBinaries>;
