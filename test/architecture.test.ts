/**
 * Import direction: domain (plain TypeScript) depends on neither services nor adapters nor the
 * AWS SDK; services depend on the interfaces in lambdas/ports.ts, never on a concrete adapter;
 * neither knows HTTP (lambdas/http maps their errors to statuses).
 * Flow: read every .ts file under lambdas/, pull out its import specifiers with a regex
 * (`from '...'`, `import('...')`, `import '...'`, `require('...')`), resolve the relative ones
 * against the file, and list every import that breaks a rule; the list must be empty.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');
const LAMBDAS = join(ROOT, 'lambdas');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

const SPECIFIER =
  /\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\bimport\s+['"]([^'"]+)['"]|\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every module specifier the source imports (or re-exports from). */
function importsOf(source: string): string[] {
  return [...source.matchAll(SPECIFIER)].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]!);
}

/** The layer (top folder under lambdas/, with '/') a relative specifier lands in, or undefined for a package. */
function targetOf(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  return relative(LAMBDAS, resolve(dirname(file), spec))
    .split(sep)
    .join('/');
}

const layerOf = (file: string): string => relative(LAMBDAS, file).split(sep).join('/');

/** The rule an import breaks, or undefined. */
function violation(fromLayer: string, target: string | undefined, spec: string): string | undefined {
  const into = (dir: string) => target !== undefined && (target === dir || target.startsWith(`${dir}/`));
  if (fromLayer.startsWith('domain/')) {
    if (into('services')) return 'domain imports services';
    if (into('adapters')) return 'domain imports adapters';
    if (spec.startsWith('@aws-sdk/')) return 'domain imports the AWS SDK';
  }
  if (fromLayer.startsWith('services/') && into('adapters')) return 'services import a concrete adapter (use lambdas/ports.ts)';
  if ((fromLayer.startsWith('domain/') || fromLayer.startsWith('services/')) && into('http'))
    return 'domain or services import the HTTP edge';
  return undefined;
}

function violationsIn(file: string, source: string): string[] {
  const layer = layerOf(file);
  return importsOf(source).flatMap((spec) => {
    const why = violation(layer, targetOf(file, spec), spec);
    return why ? [`lambdas/${layer} imports '${spec}': ${why}`] : [];
  });
}

describe('import direction', () => {
  const files = tsFiles(LAMBDAS);

  it('finds the domain and service files and their imports', () => {
    const layers = files.map(layerOf);
    expect(layers.filter((l) => l.startsWith('domain/')).length).toBeGreaterThan(5);
    expect(layers.filter((l) => l.startsWith('services/')).length).toBeGreaterThan(3);
    expect(importsOf(readFileSync(join(LAMBDAS, 'services/logs.ts'), 'utf8'))).toContain('../ports');
  });

  it('domain imports neither services, adapters, the HTTP edge nor @aws-sdk; services import no adapter and no HTTP', () => {
    const found = files.flatMap((f) => violationsIn(f, readFileSync(f, 'utf8')));
    expect(found).toEqual([]);
  });

  it('catches each kind of forbidden import (the check itself can fail)', () => {
    const at = (layer: string) => join(LAMBDAS, layer);
    expect(violationsIn(at('domain/x.ts'), "import { a } from '../services/logs';")).toHaveLength(1);
    expect(violationsIn(at('domain/x.ts'), "import type { Store } from '../adapters/store';")).toHaveLength(1);
    expect(violationsIn(at('domain/x.ts'), "const m = await import('@aws-sdk/client-dynamodb');")).toHaveLength(1);
    expect(violationsIn(at('domain/x.ts'), "import {\n  GetCommand,\n} from '@aws-sdk/lib-dynamodb';")).toHaveLength(1);
    expect(violationsIn(at('services/x.ts'), "export { sleep } from '../adapters/store';")).toHaveLength(1);
    expect(violationsIn(at('services/x.ts'), "import '../adapters/control';")).toHaveLength(1);
    expect(violationsIn(at('services/x.ts'), "import { statusOf } from '../http/errors';")).toHaveLength(1);
    expect(violationsIn(at('domain/x.ts'), "import type { HttpResult } from '../http/api';")).toHaveLength(1);
    // Allowed directions.
    expect(violationsIn(at('services/x.ts'), "import type { Store } from '../ports';\nimport { x } from '../domain/errors';")).toEqual([]);
    expect(violationsIn(at('adapters/x.ts'), "import { sleep } from '../ports';\nimport { y } from '@aws-sdk/client-dynamodb';")).toEqual(
      [],
    );
    expect(violationsIn(at('domain/x.ts'), "import { z } from 'zod';\nimport { c } from './config';")).toEqual([]);
  });
});

describe("the README's map of where things are", () => {
  it('names only files and folders that exist', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf('### Where things are');
    expect(start).toBeGreaterThan(0);
    const map = readme.slice(start, readme.indexOf('\n### ', start + 1));
    const paths = [...map.matchAll(/`((?:lambdas|lib|local|client|bench|bin|test)\/[^`\s]*)`/g)].map((m) => m[1]!);
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });
});
