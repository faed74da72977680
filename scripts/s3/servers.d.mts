// Types for servers.mjs (used by __test__/s3).

export interface S3Connection {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

export interface RunningServer extends S3Connection {
  /** SIGKILLs the server and removes its data dir and socket files. */
  stop(): Promise<void>;
  /** The tail of the server's output. */
  log(): string;
}

export interface S3Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface S3RequestOptions {
  /** Defaults to the target's bucket. */
  bucket?: string;
  /** Object key, unencoded; '' or absent for a bucket request. */
  key?: string;
  query?: Record<string, string | number>;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export const ROOT: string;
export const TOOLS: string;
export const SEAWEED_VERSION: string;
export const VERSITYGW_VERSION: string;

export function ensureSeaweed(): Promise<string>;
export function ensureVersitygw(): Promise<string | null>;
export function startSeaweed(o: { bucket: string; accessKey: string; secretKey: string }): Promise<RunningServer>;
export function startVersitygw(o: { bucket: string; accessKey: string; secretKey: string }): Promise<RunningServer>;
export function randomCredentials(): { accessKey: string; secretKey: string };

export function uriEncode(s: string): string;
export function objectPath(bucket: string, key?: string): string;
export function signV4(o: {
  method: string;
  endpoint: string;
  path: string;
  query?: Record<string, string | number>;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  accessKey: string;
  secretKey: string;
  region?: string;
  service?: string;
  date?: Date;
}): { headers: Record<string, string>; query: string };
export function s3Request(
  target: Omit<S3Connection, 'bucket'> & { bucket?: string },
  method: string,
  options?: S3RequestOptions,
): Promise<S3Response>;
