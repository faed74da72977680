import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.spec.ts'],
    globalSetup: [
      // powdb-server and powdb-cli 0.29.0, built once into .tmp/tools/powdb (first:
      // a failed build stops the run before any server starts).
      '__test__/online/global-setup.ts',
      // Real S3-compatible servers (SeaweedFS, versitygw) on 127.0.0.1 for the run.
      '__test__/s3/global-setup.ts',
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
