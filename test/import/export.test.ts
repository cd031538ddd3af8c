// Exports for the official tools come back bit-identical through the importer, in both formats,
// and the CLI commands wire it all up.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { register as registerExport } from '../../src/cli/commands/export.ts';
import { register as registerImport } from '../../src/cli/commands/import.ts';
import { UserError } from '../../src/errors.ts';
import { initBackend } from '../../src/model/backend.ts';
import {
  type Checkpoint,
  disposeCheckpoint,
  loadCheckpoint,
  NETWORK_NAMES,
  saveCheckpoint,
} from '../../src/model/checkpoint/io.ts';
import { SafetensorsReader } from '../../src/model/checkpoint/safetensors.ts';
import { exportCheckpoint } from '../../src/model/import/exporter.ts';
import { importWeights } from '../../src/model/import/importer.ts';
import { PyDict } from '../../src/model/import/pickle.ts';
import { openTorchZip } from '../../src/model/import/torch-file.ts';
import type { ParamStore } from '../../src/model/params.ts';
import { G_STATE_DICT, MODEL, STYLE } from './support/weights.ts';

let dir: string;
/** A checkpoint with all three networks and a group size other than the default. */
let original: string;

beforeAll(async () => {
  await initBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'facestyle-export-'));
  const model = await loadCheckpoint(MODEL);
  const style = await loadCheckpoint(STYLE);
  original = join(dir, 'original.safetensors');
  await saveCheckpoint(original, {
    config: { ...model.config, D: { ...model.config.D!, mbstdGroupSize: 2 } },
    meta: { name: 'original', kind: 'finetune', createdAt: new Date().toISOString() },
    G_ema: model.G,
    G: style.G,
    D: model.D,
  });
  disposeCheckpoint(model);
  disposeCheckpoint(style);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectSameParams(
  actual: ParamStore | undefined,
  expected: ParamStore | undefined,
  label: string,
) {
  expect(actual, label).toBeDefined();
  expect([...actual!.keys()].sort()).toEqual([...expected!.keys()].sort());
  for (const [name, tensor] of expected!) {
    const other = actual!.get(name)!;
    expect(other.shape, name).toEqual(tensor.shape);
    const same = Buffer.from(((await other.data()) as Float32Array).buffer).equals(
      Buffer.from(((await tensor.data()) as Float32Array).buffer),
    );
    expect(same, `${label}.${name}`).toBe(true);
  }
}

async function expectSameNetworks(actual: Checkpoint, expected: Checkpoint): Promise<void> {
  for (const network of NETWORK_NAMES) await expectSameParams(actual[network], expected[network], network);
}

async function roundTrip(exported: string, hints = {}): Promise<{ back: Checkpoint; source: Checkpoint }> {
  const reimported = join(dir, `back-${Date.now()}-${Math.random()}.safetensors`);
  await importWeights(exported, { out: reimported, hints });
  return { back: await loadCheckpoint(reimported), source: await loadCheckpoint(original) };
}

describe('export', () => {
  it('nvidia-pt: a torch.save state_dict that imports back bit-identically', async () => {
    const exported = join(dir, 'all.pt');
    const report = await exportCheckpoint(original, { format: 'nvidia-pt', out: exported });
    expect(report).toMatchObject({ networks: ['G_ema', 'G', 'D'], tensors: 75 + 75 + 37 });
    // The group size is not in a state_dict: the user passes it on import.
    const { back, source } = await roundTrip(exported, { mbstdGroupSize: 2 });
    try {
      expect(back.config).toEqual(source.config);
      await expectSameNetworks(back, source);
    } finally {
      disposeCheckpoint(back);
      disposeCheckpoint(source);
    }
  });

  it('nvidia-pt --network: bare names, ready for load_state_dict', async () => {
    const exported = join(dir, 'G.pt');
    await exportCheckpoint(original, { format: 'nvidia-pt', out: exported, network: 'G' });
    const file = await openTorchZip(exported);
    try {
      const root = file.root as PyDict;
      expect(root).toBeInstanceOf(PyDict);
      expect(root.className).toBe('collections.OrderedDict');
      expect([...root.entries.keys()].slice(0, 3)).toEqual([
        'mapping.fc0.weight',
        'mapping.fc0.bias',
        'mapping.fc1.weight',
      ]);
    } finally {
      await file.close();
    }
    const { back, source } = await roundTrip(exported);
    try {
      // A bare generator state_dict imports as the image generator.
      expect(NETWORK_NAMES.filter((n) => back[n])).toEqual(['G_ema']);
      await expectSameParams(back.G_ema, source.G, 'G');
    } finally {
      disposeCheckpoint(back);
      disposeCheckpoint(source);
    }
  });

  it('nvidia-safetensors: official names plus the settings shapes cannot show', async () => {
    const exported = join(dir, 'all.safetensors');
    await exportCheckpoint(original, { format: 'nvidia-safetensors', out: exported });
    const reader = await SafetensorsReader.open(exported);
    try {
      expect(reader.metadata).toEqual({ format: 'pt', conv_clamp: '256', mbstd_group_size: '2' });
      expect(reader.names()).toContain('G_ema.synthesis.b4.const');
      expect(reader.entries.get('G_ema.synthesis.b4.const')!.shape).toEqual([64, 4, 4]);
    } finally {
      await reader.close();
    }
    const { back, source } = await roundTrip(exported);
    try {
      expect(back.config).toEqual(source.config);
      await expectSameNetworks(back, source);
    } finally {
      disposeCheckpoint(back);
      disposeCheckpoint(source);
    }
  });

  it('refuses to export a network the checkpoint lacks', async () => {
    const generatorOnly = join(dir, 'g-only.safetensors');
    await importWeights(G_STATE_DICT, { out: generatorOnly });
    await expect(
      exportCheckpoint(generatorOnly, { format: 'nvidia-pt', out: join(dir, 'd.pt'), network: 'D' }),
    ).rejects.toThrow(/has no D network/);
  });
});

describe('facestyle import / export commands', () => {
  function cli(): Command {
    const program = new Command().exitOverride().option('--backend <name>');
    registerImport(program);
    registerExport(program);
    return program;
  }

  it('imports and exports from the command line', async () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const progress = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const imported = join(dir, 'cli.safetensors');
      await cli().parseAsync(
        ['import', G_STATE_DICT, '--out', imported, '--name', 'tiny', '--dtype', 'F16'],
        {
          from: 'user',
        },
      );
      const printed = write.mock.calls.map((c) => String(c[0])).join('');
      expect(printed).toMatch(/imported G_state_dict\.pt \(torch-zip, nvidia names\): G_ema, 32px/);
      expect(printed).toMatch(/MB\/s\), sha256 [0-9a-f]{64}/);
      const info = await SafetensorsReader.open(imported);
      expect(info.entries.get('G_ema.synthesis.b32.conv1.weight')!.dtype).toBe('F16');
      expect(JSON.parse(info.metadata.meta).name).toBe('tiny');
      await info.close();
      const exported = join(dir, 'cli.pt');
      await cli().parseAsync(['export', imported, '--format', 'nvidia-pt', '--out', exported], {
        from: 'user',
      });
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain(
        `wrote ${exported} (nvidia-pt: G_ema, 75 tensors)`,
      );
    } finally {
      write.mockRestore();
      progress.mockRestore();
    }
  });

  it('rejects bad options with user errors', async () => {
    await expect(
      cli().parseAsync(['export', original, '--format', 'tflite', '--out', join(dir, 'x')], { from: 'user' }),
    ).rejects.toThrow(UserError);
    await expect(
      cli().parseAsync(['import', G_STATE_DICT, '--out', join(dir, 'y'), '--conv-clamp', 'big'], {
        from: 'user',
      }),
    ).rejects.toThrow(/--conv-clamp/);
  });
});
