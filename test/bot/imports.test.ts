// The bot process never loads tensor code: no TensorFlow.js, ONNX Runtime, WebGPU or face detector,
// and nothing of src/model but what is plain data. This walks the import graph from every module of
// src/bot, and from the modules `facestyle bot` loads to wire it (src/cli/commands/bot.ts), through
// static imports, re-exports and dynamic import() calls, transitively.
//
// The rule, decided here and in docs/architecture.md terms:
// - type-only imports (`import type`, `export type`, `import { type A }` where every name is a
//   type) are erased at build time and never load anything: allowed everywhere;
// - src/model modules the bot may load are those that read numbers and metadata, never tensors:
//   seeds.ts (seed parsing and numpy's RandomState), and checkpoint/format.ts with what it imports
//   (safetensors headers, the architecture config), which the model catalogue reads;
// - anything else in src/model, all of src/pipelines but the model registry and the score reader
//   (both only read checkpoint headers), the worker's job handlers and the face detector are
//   forbidden.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

const FORBIDDEN_PACKAGES = [
  /^@tensorflow\//,
  /^onnxruntime/,
  /^nsfwjs$/,
  /^@vladmandic\/face-api$/,
  /^webgpu$/,
];

const ALLOWED_MODEL_MODULES = new Set([
  'src/model/seeds.ts',
  // Checkpoint headers: metadata and architecture numbers, read without loading a tensor.
  'src/model/checkpoint/format.ts',
  'src/model/checkpoint/infer.ts',
  'src/model/checkpoint/info.ts',
  'src/model/checkpoint/layout.ts',
  'src/model/checkpoint/metadata.ts',
  'src/model/checkpoint/safetensors.ts',
  'src/model/checkpoint/tensors.ts',
  'src/model/config.ts',
  // The networks' parameter tables (names and shapes, no tensors): the header readers check against them.
  'src/model/networks/specs.ts',
]);
const ALLOWED_PIPELINE_MODULES = new Set([
  'src/pipelines/registry.ts',
  // Scores read back from checkpoint metadata (best snapshot, formatting), no feature network.
  'src/pipelines/score/best.ts',
]);

function forbiddenModule(path: string): string | undefined {
  if (path.startsWith('src/model/') && !ALLOWED_MODEL_MODULES.has(path)) return 'model internals';
  if (path.startsWith('src/pipelines/') && !ALLOWED_PIPELINE_MODULES.has(path)) return 'a pipeline';
  if (path.startsWith('src/jobs/handlers/') && path !== 'src/jobs/handlers/registry.ts')
    return 'a worker job handler';
  if (path.startsWith('src/jobs/worker/') && !path.endsWith('protocol.ts') && !path.endsWith('supervisor.ts'))
    return 'the worker process';
  // Not an import of TensorFlow.js, but it starts a thread that loads it.
  if (path === 'src/datasets/face-detector.ts') return 'the face detector';
  return undefined;
}

/** Runtime module specifiers of a TypeScript source: what loading it loads. */
function runtimeImports(source: string): string[] {
  const specifiers: string[] = [];
  // import x from 'm'; import { a, type B } from 'm'; import 'm'; export { a } from 'm'; export * from 'm'
  const statement = /(?:^|\n)\s*(import|export)\s+([^;'"]*?)\s*(?:from\s*)?['"]([^'"]+)['"]/g;
  for (const match of source.matchAll(statement)) {
    const [, keyword, clause, specifier] = match;
    if (keyword === 'export' && !/\bfrom\b/.test(match[0])) continue;
    if (/^type\b/.test(clause)) continue;
    const named = /^\{([^}]*)\}$/.exec(clause.trim());
    if (named) {
      const names = named[1]
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean);
      // Every name a type: erased (no verbatimModuleSyntax in tsconfig.json).
      if (names.length && names.every((n) => n.startsWith('type '))) continue;
    }
    specifiers.push(specifier);
  }
  for (const match of source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specifiers.push(match[1]);
  return specifiers;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

interface Violation {
  module: string;
  why: string;
  /** How the bot reaches it, from an entry module. */
  chain: string[];
}

function walk(entries: string[]): { visited: Set<string>; violations: Violation[] } {
  const visited = new Set<string>();
  const violations: Violation[] = [];
  const queue = entries.map((entry) => ({ path: entry, chain: [entry] }));
  while (queue.length) {
    const { path, chain } = queue.shift()!;
    if (visited.has(path)) continue;
    visited.add(path);
    const why = forbiddenModule(path);
    if (why) {
      violations.push({ module: path, why, chain });
      continue;
    }
    for (const specifier of runtimeImports(readFileSync(join(ROOT, path), 'utf8'))) {
      if (specifier.startsWith('.')) {
        const target = relative(ROOT, resolve(ROOT, dirname(path), specifier));
        queue.push({ path: target, chain: [...chain, target] });
      } else if (FORBIDDEN_PACKAGES.some((p) => p.test(specifier))) {
        violations.push({ module: specifier, why: 'a tensor package', chain });
      }
    }
  }
  return { visited, violations };
}

describe('the bot process', () => {
  it('reads imports as the TypeScript compiler keeps them', () => {
    const source = [
      "import type { A } from './a.ts';",
      "import { type B, type C } from './bc.ts';",
      "import { type D, e } from './de.ts';",
      "import f from 'f';",
      "import {\n  g,\n  h,\n} from './gh.ts';",
      "export type { I } from './i.ts';",
      "export { j } from './j.ts';",
      'export const k = 1;',
      "const l = await import('./l.ts');",
      "import './side-effect.ts';",
    ].join('\n');
    expect(runtimeImports(source).sort()).toEqual(
      ['./de.ts', 'f', './gh.ts', './j.ts', './l.ts', './side-effect.ts'].sort(),
    );
  });

  it('never imports TensorFlow.js, ONNX Runtime, WebGPU, the face detector or model internals', () => {
    const entries = [...sourceFiles('src/bot'), 'src/cli/commands/bot.ts'];
    const { visited, violations } = walk(entries);
    // The walk really follows the graph: the bot's own modules and what they use are in it.
    expect(visited.has('src/bot/tracker.ts')).toBe(true);
    expect(visited.has('src/jobs/create.ts')).toBe(true);
    expect(visited.has('src/pipelines/registry.ts')).toBe(true);
    expect([...visited].filter((m) => m.startsWith('src/model/')).sort()).toEqual(
      [...ALLOWED_MODEL_MODULES].sort(),
    );
    expect(violations.map((v) => `${v.module} (${v.why}): ${v.chain.join(' -> ')}`)).toEqual([]);
  });

  it('would catch the dataset intake running in the bot, as it did before it became a job', () => {
    const { violations } = walk(['src/datasets/index.ts']);
    expect(violations.map((v) => v.module)).toContain('src/datasets/face-detector.ts');
  });

  it('would catch a pipeline import', () => {
    const { violations } = walk(['src/jobs/handlers/index.ts']);
    expect(violations.map((v) => v.why)).toContain('a worker job handler');
    const pipeline = walk(['src/pipelines/blend.ts']);
    expect(pipeline.violations.map((v) => v.why)).toContain('a pipeline');
  });
});
