// The package's version, read from its package.json: the nearest one above
// this module that is ours (lib/common/ in the sources, dist/lib/common/ in
// the build, dist/ in the CommonJS bundle).
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'powdb-backup' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next level
    }
  }
  return 'unknown';
}
