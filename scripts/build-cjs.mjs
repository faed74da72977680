// The CommonJS entry point: index.ts bundled by esbuild into dist/index.cjs
// (dependencies stay external). `import.meta.url`, which CommonJS lacks, is
// derived from __filename so the loader still finds the package root.
import { build } from 'esbuild';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
await build({
  entryPoints: [join(root, 'index.ts')],
  outfile: join(root, 'dist', 'index.cjs'),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  define: { 'import.meta.url': '__powdbModuleUrl' },
  banner: { js: "var __powdbModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});

// tsc emits no .d.ts inputs: the generated boundary types go beside the
// compiled native modules, whose declarations import them.
copyFileSync(join(root, 'lib', 'native', 'binding.d.ts'), join(root, 'dist', 'lib', 'native', 'binding.d.ts'));
