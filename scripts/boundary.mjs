// The native boundary's types: `napi build` generates build/Release/index.d.ts
// from the Rust `#[napi]` items; lib/native/binding.d.ts is that file,
// committed, so the TypeScript side is typed by what the Rust declares.
//
//   node scripts/boundary.mjs          fails when the two differ (the lint gate)
//   node scripts/boundary.mjs --write  copies the generated file over (npm run format)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const generated = join(root, 'build', 'Release', 'index.d.ts');
const committed = join(root, 'lib', 'native', 'binding.d.ts');

if (!existsSync(generated)) {
  console.error(`${generated} is missing: build the addon first (npm run build:native)`);
  process.exit(1);
}
const fresh = readFileSync(generated, 'utf8');
if (process.argv.includes('--write')) {
  writeFileSync(committed, fresh);
} else if (!existsSync(committed) || readFileSync(committed, 'utf8') !== fresh) {
  console.error(
    'lib/native/binding.d.ts differs from what `napi build` generates from the Rust: run `npm run build:native && npm run format`, then commit it',
  );
  process.exit(1);
}
