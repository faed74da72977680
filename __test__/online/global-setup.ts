// vitest globalSetup: the powdb-server and powdb-cli binaries for the tests
// that run a live server (__test__/powdb-server.ts), provided as `powdb`.
// Built once with cargo install into .tmp/tools/powdb (scripts/powdb-server.mjs:
// minutes the first time, printed as it goes; instant afterwards).
import type { TestProject } from 'vitest/node';
import { ensurePowdbServer } from '../../scripts/powdb-server.mjs';

export default async function setup(project: TestProject): Promise<void> {
  project.provide('powdb', await ensurePowdbServer());
}
