import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.spec.ts'],
    // Real S3-compatible servers (SeaweedFS, versitygw) on 127.0.0.1 for the run.
    globalSetup: ['__test__/s3/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
