// `npm run test:random -- [--seeds 1-200] [--rounds 8] [--ops 12] [--gen old|new]`:
// the randomized differential test (__test__/randomized.spec.ts) over many
// seeds and long chains. A failure prints its seed and every operation.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1-50' },
    rounds: { type: 'string', default: '8' },
    ops: { type: 'string', default: '12' },
    gen: { type: 'string' },
  },
});
const env = { ...process.env, POWDB_SEEDS: values.seeds, POWDB_ROUNDS: values.rounds, POWDB_OPS: values.ops };
const filter = values.gen ? ['-t', `engine ${values.gen}`] : [];
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', '__test__/randomized.spec.ts', ...filter], {
  cwd: root,
  env,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
