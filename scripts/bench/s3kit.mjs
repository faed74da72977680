// What the parts that talk to a local S3 server share. While the server runs, every command goes through the
// event loop (never execFileSync): the server's output comes to this process through a pipe, and a blocked loop
// would let that pipe fill and stall the server.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rcloneEnv } from '../s3/rclone.mjs';
import { lastJson, ours, script } from './kit.mjs';

const execFileAsync = promisify(execFile);
export const runAsync = async (cmd, args, env = process.env) =>
  (await execFileAsync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, env })).stdout.trim();
export const jsonAsync = async (cmd, args, env) => lastJson(await runAsync(cmd, args, env));
export const oursAsync = (env, ...args) => runAsync(process.execPath, ours(...args).slice(1), env);

/** One timed run of `argv` (with `env`) after `await prepare()` and a `sync` (fsync-bound timings are bimodal otherwise). */
export async function sampleAsync(argv, env, prepare) {
  await prepare();
  await runAsync('sync', []);
  return jsonAsync('python3', [script('measure.py'), ...argv], env);
}

/** The environment without the variables matching `drop` (none of the user's S3 settings leak in). */
const envWithout = (drop) => Object.fromEntries(Object.entries(process.env).filter(([k]) => !drop.test(k)));

/** Our environment and rclone's for `server`. */
export const environments = (server) => ({
  ours: {
    ...envWithout(/^(AWS_|POWDB_BACKUP_PASSWORD$)/),
    AWS_ACCESS_KEY_ID: server.accessKey,
    AWS_SECRET_ACCESS_KEY: server.secretKey,
    AWS_REGION: server.region,
    AWS_ALLOW_HTTP: 'true',
  },
  // No config file: the remote `bench` comes from RCLONE_CONFIG_BENCH_* alone.
  rclone: { ...envWithout(/^RCLONE_/), ...rcloneEnv('bench', server), RCLONE_CONFIG: '' },
});
