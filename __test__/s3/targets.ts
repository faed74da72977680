// The S3 targets started by __test__/s3/global-setup.ts, for tests:
//
//   for (const target of s3Targets()) {
//     const url = freshPrefix(target);              // s3://<bucket>/powdb-backup-test/<unique>
//     run CLI with { env: { ...process.env, ...envFor(target) } } against url
//   }
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { s3Request } from '../../scripts/s3/servers.mjs';

export interface S3Target {
  name: 'seaweedfs' | 'versitygw' | 'external';
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3Targets: S3Target[];
  }
}

/** Every S3 server of this run: SeaweedFS and versitygw, or the one POWDB_S3_ENDPOINT names. */
export function s3Targets(): S3Target[] {
  const targets = inject('s3Targets');
  if (!targets?.length)
    throw new Error('no S3 targets: is __test__/s3/global-setup.ts in vitest.config.ts test.globalSetup?');
  return targets;
}

function resolve(target: S3Target | S3Target['name']): S3Target {
  if (typeof target !== 'string') return target;
  const found = s3Targets().find((t) => t.name === target);
  if (!found) throw new Error(`no S3 target named ${target} in this run`);
  return found;
}

/** Top-level prefix of everything tests write (so an external bucket can be cleaned by hand). */
export const TEST_PREFIX = 'powdb-backup-test';

/**
 * A new, unique `s3://<bucket>/powdb-backup-test/<label>-<random>` URL on the
 * target (an S3Target or its name); nothing exists under it yet.
 */
export function freshPrefix(target: S3Target | S3Target['name'], label = 'repo'): string {
  const t = resolve(target);
  const safe = label.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 40);
  return `s3://${t.bucket}/${TEST_PREFIX}/${safe}-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** The environment the product reads to reach the target. */
export function envFor(target: S3Target | S3Target['name']): Record<string, string> {
  const t = resolve(target);
  return {
    AWS_ACCESS_KEY_ID: t.accessKey,
    AWS_SECRET_ACCESS_KEY: t.secretKey,
    AWS_REGION: t.region,
    AWS_ENDPOINT_URL: t.endpoint,
    AWS_ALLOW_HTTP: 'true',
  };
}

/** Splits `s3://bucket/key/prefix` into its bucket and key prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new Error(`not an s3:// URL: ${url}`);
  return { bucket: m[1]!, prefix: m[2]! };
}

/** Keys under an s3:// URL (ListObjectsV2, all pages), relative to the bucket. */
export async function listKeys(target: S3Target | S3Target['name'], url: string): Promise<string[]> {
  const t = resolve(target);
  const { bucket, prefix } = parseS3Url(url);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const query: Record<string, string> = { 'list-type': '2', prefix };
    if (token) query['continuation-token'] = token;
    const r = await s3Request(t, 'GET', { bucket, query });
    const xml = r.body.toString();
    if (r.status !== 200) throw new Error(`ListObjectsV2 s3://${bucket}/${prefix}: ${r.status} ${xml}`);
    for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unescapeXml(m[1]!));
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
      ? unescapeXml(/<NextContinuationToken>([^<]*)</.exec(xml)?.[1] ?? '')
      : undefined;
  } while (token);
  return keys;
}

/** Deletes every object under an s3:// URL. */
export async function deletePrefix(target: S3Target | S3Target['name'], url: string): Promise<void> {
  const t = resolve(target);
  const { bucket } = parseS3Url(url);
  for (const key of await listKeys(t, url)) {
    const r = await s3Request(t, 'DELETE', { bucket, key });
    if (r.status !== 204 && r.status !== 200) throw new Error(`DELETE s3://${bucket}/${key}: ${r.status} ${r.body}`);
  }
}

export function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-fA-F]+));/g, (_, name: string, dec?: string, hex?: string) =>
    dec
      ? String.fromCodePoint(Number(dec))
      : hex
        ? String.fromCodePoint(parseInt(hex, 16))
        : ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' } as Record<string, string>)[name]!,
  );
}
