// `facestyle export`: a checkpoint back out in the layouts the official PyTorch tools read:
// safetensors or a torch.save state_dict, official NVlabs names, PyTorch layouts, float32.
// All networks go out under `G_ema.`/`G.`/`D.` names; a single network can go out with bare names,
// ready for `G.load_state_dict(torch.load(path))`.
import {
  type Checkpoint,
  CheckpointError,
  discriminatorTorchShapes,
  disposeCheckpoint,
  generatorTorchShapes,
  loadCheckpoint,
  NETWORK_NAMES,
  type NetworkName,
} from '../checkpoint/io.ts';
import { tfToTorch } from '../checkpoint/layout.ts';
import { type TensorSpec, writeSafetensorsStreamed } from '../checkpoint/safetensors.ts';
import { writeTorchStateDict } from './torch-save.ts';

export const EXPORT_FORMATS = ['nvidia-safetensors', 'nvidia-pt'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  format: ExportFormat;
  out: string;
  /** Export only this network, with bare (unprefixed) names. */
  network?: NetworkName;
}

export interface ExportReport {
  out: string;
  format: ExportFormat;
  networks: NetworkName[];
  tensors: number;
}

export function parseExportFormat(value: string): ExportFormat {
  if (!(EXPORT_FORMATS as readonly string[]).includes(value))
    throw new CheckpointError(`unknown export format "${value}"`, `use one of ${EXPORT_FORMATS.join(', ')}`);
  return value as ExportFormat;
}

export function parseNetworkName(value: string): NetworkName {
  if (!(NETWORK_NAMES as readonly string[]).includes(value))
    throw new CheckpointError(`unknown network "${value}"`, `use one of ${NETWORK_NAMES.join(', ')}`);
  return value as NetworkName;
}

interface ExportedTensor {
  name: string;
  shape: number[];
  values(): Promise<Float32Array>;
}

/** Every tensor in official order with its PyTorch shape; values are downloaded one at a time. */
function exportedTensors(ckpt: Checkpoint, networks: NetworkName[], bare: boolean): ExportedTensor[] {
  const out: ExportedTensor[] = [];
  for (const network of networks) {
    const params = ckpt[network]!;
    const shapes =
      network === 'D' ? discriminatorTorchShapes(ckpt.config.D!) : generatorTorchShapes(ckpt.config.G);
    for (const [name, shape] of shapes) {
      const tensor = params.get(name)!;
      out.push({
        name: bare ? name : `${network}.${name}`,
        shape,
        values: async () => tfToTorch(name, tensor.shape, (await tensor.data()) as Float32Array).data,
      });
    }
  }
  return out;
}

/** Settings shapes cannot show, as the metadata keys the checkpoint loader reads back. */
function settingsMetadata(ckpt: Checkpoint, networks: NetworkName[]): Record<string, string> {
  const metadata: Record<string, string> = { format: 'pt' };
  const clamp =
    networks.includes('D') && !networks.some((n) => n !== 'D')
      ? ckpt.config.D?.convClamp
      : ckpt.config.G.convClamp;
  if (clamp !== undefined) metadata.conv_clamp = clamp === null ? 'none' : String(clamp);
  if (networks.includes('D') && ckpt.config.D)
    metadata.mbstd_group_size = String(ckpt.config.D.mbstdGroupSize);
  return metadata;
}

/** Writes `checkpoint` as `opts.format` to `opts.out`. */
export async function exportCheckpoint(checkpoint: string, opts: ExportOptions): Promise<ExportReport> {
  const ckpt = await loadCheckpoint(checkpoint, opts.network ? { networks: [opts.network] } : {});
  try {
    const networks = NETWORK_NAMES.filter((n) => ckpt[n]);
    if (opts.network && !networks.includes(opts.network))
      throw new CheckpointError(`${checkpoint} has no ${opts.network} network to export`);
    const tensors = exportedTensors(ckpt, networks, opts.network !== undefined);
    if (opts.format === 'nvidia-pt') {
      await writeTorchStateDict(opts.out, tensors);
    } else {
      const byName = new Map(tensors.map((t) => [t.name, t]));
      const specs: TensorSpec[] = tensors.map(({ name, shape }) => ({ name, shape, dtype: 'F32' }));
      await writeSafetensorsStreamed(
        opts.out,
        specs,
        (spec) => byName.get(spec.name)!.values(),
        settingsMetadata(ckpt, networks),
      );
    }
    return { out: opts.out, format: opts.format, networks, tensors: tensors.length };
  } finally {
    disposeCheckpoint(ckpt);
  }
}
