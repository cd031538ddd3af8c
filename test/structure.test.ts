// The shape of the source tree, as docs/architecture.md describes it.
//
// Layers: the top-level folders of src/ (and the files at its root as one more), in the order of
// docs/architecture.md; a layer imports only layers below it (so layers form no cycle either).
//
// Import cycles among files. Static `import`/`export ... from` count, `import type` too: a type-only
// cycle does nothing at run time, but it still means two layers know each other, and the next
// value import along it makes a real circle with module-initialisation order bugs. Dynamic
// `import()` does not count: it is how a layer is loaded lazily on purpose (the CLI's commands).
//
// File size: no file in src/ over MAX_LINES unless a line of its header comment, starting
// "// Over 500 lines:", gives the reason it stays whole.
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ImportEdge, importCycles, importEdges, sourceFiles } from './support/import-graph.ts';

const SRC = resolve(fileURLToPath(new URL('../src', import.meta.url)));
const MAX_LINES = 500;
const SIZE_REASON = /^\/\/ Over 500 lines: \S.{10,}/;

/** Top to bottom, as docs/architecture.md lists them. */
const ENTRY_POINTS = '(entry points: cli, bench, demo)';
const LAYERS = [
  ENTRY_POINTS,
  'bot',
  'jobs',
  'pipelines',
  'model',
  'datasets',
  'store',
  'images',
  '(src root)',
];

function layerOf(path: string): string {
  const slash = path.indexOf('/');
  if (slash < 0) return '(src root)';
  const folder = path.slice(0, slash);
  // One layer: the benchmarks share the CLI's option parsing, and the CLI runs benches and the demo.
  return ['cli', 'bench', 'demo'].includes(folder) ? ENTRY_POINTS : folder;
}

const describeCycle = (cycle: string[]) => cycle.join(' -> ');

describe('import graph of src/', () => {
  const edges = importEdges(SRC);

  it('finds the imports (the walker reads this tree)', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges).toContainEqual({ from: 'jobs/job-store.ts', to: 'store/keyv.ts', typeOnly: false });
    expect(edges.some((e) => e.typeOnly)).toBe(true);
  });

  it('has no import cycle between files', () => {
    expect(importCycles(edges).map(describeCycle)).toEqual([]);
  });

  it('imports only downwards through the layers', () => {
    const folders = new Set(edges.flatMap((e) => [layerOf(e.from), layerOf(e.to)]));
    expect([...folders].filter((layer) => !LAYERS.includes(layer))).toEqual([]);
    const upwards = edges
      .filter((e) => LAYERS.indexOf(layerOf(e.to)) < LAYERS.indexOf(layerOf(e.from)))
      .map((e) => `${e.from} -> ${e.to}${e.typeOnly ? ' (type)' : ''}`);
    expect(upwards).toEqual([]);
  });
});

describe('the checkpoint format without TensorFlow.js', () => {
  // The bot lists models with readCheckpointInfo, which validates each file against the networks'
  // parameter specs: none of that may load tfjs (see src/model/checkpoint/format.ts).
  it('reaches no TensorFlow.js import from checkpoint/info.ts', () => {
    const next = new Map<string, string[]>();
    for (const e of importEdges(SRC).filter((e) => !e.typeOnly)) {
      if (!next.has(e.from)) next.set(e.from, []);
      next.get(e.from)!.push(e.to);
    }
    const reached = new Set(['model/checkpoint/info.ts']);
    for (const file of reached) for (const to of next.get(file) ?? []) reached.add(to);
    expect(reached).toContain('model/networks/specs.ts');
    const loadingTfjs = [...reached].filter((file) =>
      /^\s*(import|export)\s[^;]*?['"]@tensorflow\//m.test(readFileSync(resolve(SRC, file), 'utf8')),
    );
    expect(loadingTfjs).toEqual([]);
  });
});

describe('import cycle finder', () => {
  const edge = (from: string, to: string): ImportEdge => ({ from, to, typeOnly: false });

  it('reports a circle through three files once, in import order', () => {
    const cycles = importCycles([edge('a', 'b'), edge('b', 'c'), edge('c', 'a'), edge('c', 'd')]);
    expect(cycles).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('reports a file that imports itself, and nothing for a tree', () => {
    expect(importCycles([edge('a', 'a')])).toEqual([['a', 'a']]);
    expect(importCycles([edge('a', 'b'), edge('a', 'c'), edge('b', 'c')])).toEqual([]);
  });
});

describe('file sizes in src/', () => {
  it(`keeps files under ${MAX_LINES} lines, or says in the header why not`, () => {
    const tooLong: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      if (lines.length <= MAX_LINES) continue;
      const header = lines.slice(
        0,
        lines.findIndex((line) => !line.startsWith('//')),
      );
      if (!header.some((line) => SIZE_REASON.test(line)))
        tooLong.push(`${relative(SRC, file)} (${lines.length} lines)`);
    }
    expect(tooLong).toEqual([]);
  });
});
