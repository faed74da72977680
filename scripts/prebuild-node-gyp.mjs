#!/usr/bin/env node
// Stands in for node-gyp when prebuildify calls `<node-gyp> rebuild ...`:
// prebuildify only knows node-gyp, so this builds the addon with napi-rs into
// build/Release, where prebuildify picks up the first *.node file.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
execFileSync(
  process.execPath,
  [
    napi,
    'build',
    '--release',
    '--manifest-path',
    join(root, 'crate', 'Cargo.toml'),
    '--output-dir',
    join(root, 'build', 'Release'),
  ],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
