// rosinality/stylegan2-pytorch state_dicts mapped onto the official NVlabs names, and back.
//
// The two implementations compute the same function with the same stored values, so the mapping
// only renames and drops size-1 dimensions:
// - EqualLinear / EqualConv2d store weights unscaled (the 1/sqrt(fan_in) and lr multiplier are
//   applied at run time) exactly as NVIDIA's layers do; the mapping network's `style.{i+1}` is
//   `mapping.fc{i}` (index 0 is PixelNorm, which has no parameters).
// - ModulatedConv2d keeps its weight as [1, out, in, k, k]; its `modulation` is the official
//   `affine` (bias initialised to 1 in both); FusedLeakyReLU's `bias` is the layer bias; the noise
//   strength `noise.weight` is [1] where the official one is a scalar; `noises.noise_i` are the
//   constant noise maps [1, 1, r, r] in layer order.
// - Up-sampling convs: both flip the TensorFlow weights the same way and run a stride-2 transposed
//   conv followed by the [1,3,3,1] blur (rosinality pads (1, 1), as conv2d_resample does), so the
//   weights carry over unchanged. The blur kernels stored there are the normalised filter times 4
//   (the up-sampling gain); the official buffers hold the normalised filter, so they are checked
//   and replaced, not copied.
// - ToRGB: rosinality adds the up-sampled skip after its conv, NVIDIA up-samples the running image
//   first and adds the conv: a sum, the same either way. Its bias is [1, 3, 1, 1].
// - Discriminator: ConvLayer is Sequential(Blur?, EqualConv2d, FusedLeakyReLU), so weights sit at
//   index 0 (or 1 after a blur) and biases one index later; ResBlock conv1/conv2/skip are the
//   official conv0/conv1/skip of block b{r}, and (out + skip) / sqrt(2) equals NVIDIA's sqrt(0.5)
//   gains; final_conv / final_linear.0 / final_linear.1 are b4.conv / b4.fc / b4.out.
// - rosinality does not clamp activations (conv_clamp None) and uses minibatch-std groups of 4.
// This has been checked against rosinality's model.py and convert_weight.py, not against outputs
// of its code.
import { CheckpointError, type NetworkName } from '../checkpoint/io.ts';
import {
  constantTensor,
  reshapedTensor,
  type SourceTensor,
  type SourceTensors,
  standardResampleFilter,
} from './source-tensors.ts';

const ROSINALITY_PREFIX: Record<string, NetworkName> = { 'g_ema.': 'G_ema', 'g.': 'G', 'd.': 'D' };
const OFFICIAL_TO_ROSINALITY: Record<NetworkName, string> = { G_ema: 'g_ema.', G: 'g.', D: 'd.' };
const BARE_NAME =
  /^(style\.\d+\.|input\.input$|conv1\.|to_rgb1\.|convs\.\d+\.|to_rgbs\.\d+\.|noises\.|final_conv\.|final_linear\.)/;
const UP_GAIN = 4;

/** Whether the names follow rosinality's layout (prefixed g_ema./g./d. or bare module names). */
export function isRosinalityNaming(names: Iterable<string>): boolean {
  for (const name of names) {
    if (/^(g_ema|g|d)\./.test(name) || name === 'latent_avg' || BARE_NAME.test(name)) return true;
  }
  return false;
}

class NameConsumer {
  readonly out: SourceTensors = new Map();
  readonly kernelChecks: Array<{ name: string; tensor: SourceTensor; gain: number }> = [];

  constructor(
    private readonly remaining: SourceTensors,
    private readonly srcPrefix: string,
    private readonly dstPrefix: string,
    private readonly source: string,
  ) {}

  has(name: string): boolean {
    return this.remaining.has(this.srcPrefix + name);
  }

  take(name: string, rank?: number): SourceTensor {
    const full = this.srcPrefix + name;
    const tensor = this.remaining.get(full);
    if (!tensor) throw new CheckpointError(`${this.source}: missing tensor ${full} (rosinality layout)`);
    if (rank !== undefined && tensor.shape.length !== rank) {
      throw new CheckpointError(
        `${this.source}: tensor ${full} has shape [${tensor.shape}]; expected rank ${rank}`,
      );
    }
    this.remaining.delete(full);
    return tensor;
  }

  /** Takes a tensor whose leading dimensions of size 1 the official layout does not have. */
  takeSqueezed(name: string, rank: number, leading: number): SourceTensor {
    const tensor = this.take(name, rank);
    if (tensor.shape.slice(0, leading).some((d) => d !== 1)) {
      throw new CheckpointError(
        `${this.source}: tensor ${this.srcPrefix}${name} has shape [${tensor.shape}]; expected ${leading} leading dimension(s) of size 1`,
      );
    }
    return reshapedTensor(tensor, tensor.shape.slice(leading));
  }

  /** A bias kept as [1, C, 1, 1] for broadcasting: the official one is [C]. */
  takeChannelBias(name: string): SourceTensor {
    const tensor = this.take(name, 4);
    const [one, channels, h, w] = tensor.shape;
    if (one !== 1 || h !== 1 || w !== 1) {
      throw new CheckpointError(
        `${this.source}: tensor ${this.srcPrefix}${name} has shape [${tensor.shape}]; expected [1, C, 1, 1]`,
      );
    }
    return reshapedTensor(tensor, [channels]);
  }

  set(name: string, tensor: SourceTensor): void {
    this.out.set(this.dstPrefix + name, tensor);
  }

  filter(name: string): void {
    this.set(name, constantTensor([4, 4], standardResampleFilter()));
  }

  /** A stored blur kernel must be the standard filter times `gain`; the official buffer replaces it. */
  checkKernel(name: string, gain: number): void {
    this.kernelChecks.push({ name: this.srcPrefix + name, tensor: this.take(name, 2), gain });
  }
}

function mapGenerator(c: NameConsumer): void {
  for (let i = 1; c.has(`style.${i}.weight`); i++) {
    c.set(`mapping.fc${i - 1}.weight`, c.take(`style.${i}.weight`, 2));
    c.set(`mapping.fc${i - 1}.bias`, c.take(`style.${i}.bias`, 1));
  }
  c.set('synthesis.b4.const', c.takeSqueezed('input.input', 4, 1));
  c.filter('synthesis.b4.resample_filter');
  styledConv(c, 'conv1', 'synthesis.b4.conv1', false);
  c.set('synthesis.b4.conv1.noise_const', c.takeSqueezed('noises.noise_0', 4, 2));
  toRgb(c, 'to_rgb1', 'synthesis.b4.torgb', false);
  for (let k = 0; c.has(`convs.${2 * k}.conv.weight`); k++) {
    const block = `synthesis.b${2 ** (k + 3)}`;
    c.filter(`${block}.resample_filter`);
    styledConv(c, `convs.${2 * k}`, `${block}.conv0`, true);
    styledConv(c, `convs.${2 * k + 1}`, `${block}.conv1`, false);
    c.set(`${block}.conv0.noise_const`, c.takeSqueezed(`noises.noise_${2 * k + 1}`, 4, 2));
    c.set(`${block}.conv1.noise_const`, c.takeSqueezed(`noises.noise_${2 * k + 2}`, 4, 2));
    toRgb(c, `to_rgbs.${k}`, `${block}.torgb`, true);
  }
}

function styledConv(c: NameConsumer, src: string, dst: string, up: boolean): void {
  c.set(`${dst}.weight`, c.takeSqueezed(`${src}.conv.weight`, 5, 1));
  c.set(`${dst}.affine.weight`, c.take(`${src}.conv.modulation.weight`, 2));
  c.set(`${dst}.affine.bias`, c.take(`${src}.conv.modulation.bias`, 1));
  c.set(`${dst}.noise_strength`, c.takeSqueezed(`${src}.noise.weight`, 1, 1));
  c.set(`${dst}.bias`, c.take(`${src}.activate.bias`, 1));
  c.filter(`${dst}.resample_filter`);
  if (up) c.checkKernel(`${src}.conv.blur.kernel`, UP_GAIN);
}

function toRgb(c: NameConsumer, src: string, dst: string, up: boolean): void {
  c.set(`${dst}.weight`, c.takeSqueezed(`${src}.conv.weight`, 5, 1));
  c.set(`${dst}.affine.weight`, c.take(`${src}.conv.modulation.weight`, 2));
  c.set(`${dst}.affine.bias`, c.take(`${src}.conv.modulation.bias`, 1));
  c.set(`${dst}.bias`, c.takeChannelBias(`${src}.bias`));
  if (up) c.checkKernel(`${src}.upsample.kernel`, UP_GAIN);
}

function mapDiscriminator(c: NameConsumer, source: string): void {
  let blocks = 0;
  while (c.has(`convs.${blocks + 1}.conv1.0.weight`)) blocks++;
  if (blocks === 0) throw new CheckpointError(`${source}: the rosinality discriminator has no ResBlocks`);
  const resolution = 4 * 2 ** blocks;
  const top = `b${resolution}`;
  c.set(`${top}.fromrgb.weight`, c.take('convs.0.0.weight', 4));
  c.set(`${top}.fromrgb.bias`, c.take('convs.0.1.bias', 1));
  c.filter(`${top}.fromrgb.resample_filter`);
  for (let i = 1; i <= blocks; i++) {
    const block = `b${resolution / 2 ** (i - 1)}`;
    c.set(`${block}.conv0.weight`, c.take(`convs.${i}.conv1.0.weight`, 4));
    c.set(`${block}.conv0.bias`, c.take(`convs.${i}.conv1.1.bias`, 1));
    c.checkKernel(`convs.${i}.conv2.0.kernel`, 1);
    c.set(`${block}.conv1.weight`, c.take(`convs.${i}.conv2.1.weight`, 4));
    c.set(`${block}.conv1.bias`, c.take(`convs.${i}.conv2.2.bias`, 1));
    c.checkKernel(`convs.${i}.skip.0.kernel`, 1);
    c.set(`${block}.skip.weight`, c.take(`convs.${i}.skip.1.weight`, 4));
    for (const layer of ['conv0', 'conv1', 'skip']) c.filter(`${block}.${layer}.resample_filter`);
    c.filter(`${block}.resample_filter`);
  }
  c.set('b4.conv.weight', c.take('final_conv.0.weight', 4));
  c.set('b4.conv.bias', c.take('final_conv.1.bias', 1));
  c.filter('b4.conv.resample_filter');
  c.set('b4.fc.weight', c.take('final_linear.0.weight', 2));
  c.set('b4.fc.bias', c.take('final_linear.0.bias', 1));
  c.set('b4.out.weight', c.take('final_linear.1.weight', 2));
  c.set('b4.out.bias', c.take('final_linear.1.bias', 1));
}

async function verifyKernels(checks: NameConsumer['kernelChecks'], source: string): Promise<void> {
  const standard = standardResampleFilter();
  for (const { name, tensor, gain } of checks) {
    const values = await tensor.read();
    const matches =
      values.length === standard.length &&
      values.every((v, i) => Math.abs(v - standard[i] * gain) <= 1e-6 * gain);
    if (!matches) {
      throw new CheckpointError(
        `${source}: ${name} is not the standard [1,3,3,1] blur kernel`,
        'only models trained with the default blur_kernel=[1,3,3,1] are supported',
      );
    }
  }
}

export interface RosinalityConversion {
  /** Official names with network prefixes (G_ema./G./D.). */
  tensors: SourceTensors;
  /** Generators that got no w_avg from the file (it must be estimated). */
  missingWAvg: NetworkName[];
}

/**
 * Maps a rosinality checkpoint (`g_ema.*`, `g.*`, `d.*`, `latent_avg`, or a bare generator or
 * discriminator state_dict) onto official names. `latent_avg` becomes the generators' `w_avg`.
 */
export async function rosinalityToOfficial(
  tensors: SourceTensors,
  source: string,
): Promise<RosinalityConversion> {
  const remaining: SourceTensors = new Map(tensors);
  const latentAvg = remaining.get('latent_avg');
  remaining.delete('latent_avg');
  const prefixes = Object.keys(ROSINALITY_PREFIX).filter((p) =>
    [...remaining.keys()].some((n) => n.startsWith(p)),
  );
  const networks: Array<[string, NetworkName]> = prefixes.map((p) => [p, ROSINALITY_PREFIX[p]]);
  if (networks.length === 0) {
    const bareIsDiscriminator = remaining.has('final_linear.0.weight');
    networks.push(['', bareIsDiscriminator ? 'D' : 'G_ema']);
  }
  const out: SourceTensors = new Map();
  const missingWAvg: NetworkName[] = [];
  for (const [prefix, network] of networks) {
    const consumer = new NameConsumer(remaining, prefix, `${network}.`, source);
    if (network === 'D') mapDiscriminator(consumer, source);
    else {
      mapGenerator(consumer);
      if (latentAvg)
        consumer.set(
          'mapping.w_avg',
          reshapedTensor(latentAvg, [latentAvg.shape.reduce((a, b) => a * b, 1)]),
        );
      else missingWAvg.push(network);
    }
    await verifyKernels(consumer.kernelChecks, source);
    for (const [name, tensor] of consumer.out) out.set(name, tensor);
  }
  if (remaining.size > 0) {
    const names = [...remaining.keys()];
    throw new CheckpointError(
      `${source}: unexpected tensor${names.length > 1 ? 's' : ''} in a rosinality checkpoint: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
      'only the stylegan2-pytorch Generator and Discriminator (model.py) are supported',
    );
  }
  return { tensors: out, missingWAvg };
}

/**
 * The inverse mapping, official (prefixed) names to rosinality's: `g_ema.*`, `g.*`, `d.*`, and
 * `latent_avg` from G_ema's w_avg. Resample filters become the blur kernels rosinality stores.
 */
export function officialToRosinality(tensors: SourceTensors): SourceTensors {
  const out: SourceTensors = new Map();
  const filter = standardResampleFilter();
  const topOfD = Math.max(0, ...[...tensors.keys()].map((n) => Number(/^D\.b(\d+)\./.exec(n)?.[1] ?? 0)));
  for (const [fullName, tensor] of tensors) {
    const dot = fullName.indexOf('.');
    const network = fullName.slice(0, dot) as NetworkName;
    const name = fullName.slice(dot + 1);
    const prefix = OFFICIAL_TO_ROSINALITY[network];
    if (!prefix) throw new Error(`not an official prefixed name: ${fullName}`);
    const mapped = network === 'D' ? discriminatorName(name, topOfD) : generatorName(name);
    if (mapped === 'latent_avg') {
      if (network === 'G_ema') out.set('latent_avg', tensor);
      continue;
    }
    if (mapped === null) continue;
    out.set(prefix + mapped.name, mapped.shape ? reshapedTensor(tensor, mapped.shape(tensor.shape)) : tensor);
    for (const [kernelName, gain] of mapped.kernels ?? [])
      out.set(
        prefix + kernelName,
        constantTensor(
          [4, 4],
          filter.map((v) => v * gain),
        ),
      );
  }
  return out;
}

interface MappedName {
  name: string;
  shape?: (official: number[]) => number[];
  /** Blur kernels rosinality keeps next to this tensor, with their gain over the normalised filter. */
  kernels?: Array<[string, number]>;
}

const lead = (count: number) => (shape: number[]) => [...Array(count).fill(1), ...shape];

function generatorName(name: string): MappedName | 'latent_avg' | null {
  if (name.endsWith('resample_filter')) return null;
  if (name === 'mapping.w_avg') return 'latent_avg';
  let m = /^mapping\.fc(\d+)\.(weight|bias)$/.exec(name);
  if (m) return { name: `style.${Number(m[1]) + 1}.${m[2]}` };
  if (name === 'synthesis.b4.const') return { name: 'input.input', shape: lead(1) };
  m = /^synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)$/.exec(name);
  if (!m) throw new Error(`unmapped generator tensor ${name}`);
  const res = Number(m[1]);
  const [layer, field] = [m[2], m[3]];
  const k = Math.log2(res) - 3;
  const modulation = (module: string) => `${module}.conv.${field.replace('affine', 'modulation')}`;
  if (layer === 'torgb') {
    const module = res === 4 ? 'to_rgb1' : `to_rgbs.${k}`;
    if (field === 'weight') {
      const kernels: Array<[string, number]> = res === 4 ? [] : [[`${module}.upsample.kernel`, UP_GAIN]];
      return { name: `${module}.conv.weight`, shape: lead(1), kernels };
    }
    if (field === 'bias') return { name: `${module}.bias`, shape: (s) => [1, ...s, 1, 1] };
    return { name: modulation(module) };
  }
  const up = layer === 'conv0';
  const module = res === 4 ? 'conv1' : `convs.${2 * k + (up ? 0 : 1)}`;
  switch (field) {
    case 'weight':
      return {
        name: `${module}.conv.weight`,
        shape: lead(1),
        kernels: up ? [[`${module}.conv.blur.kernel`, UP_GAIN]] : [],
      };
    case 'bias':
      return { name: `${module}.activate.bias` };
    case 'noise_strength':
      return { name: `${module}.noise.weight`, shape: () => [1] };
    case 'noise_const':
      return { name: `noises.noise_${res === 4 ? 0 : 2 * k + (up ? 1 : 2)}`, shape: lead(2) };
    default:
      return { name: modulation(module) };
  }
}

const EPILOGUE: Record<string, string> = {
  'b4.conv.weight': 'final_conv.0.weight',
  'b4.conv.bias': 'final_conv.1.bias',
  'b4.fc.weight': 'final_linear.0.weight',
  'b4.fc.bias': 'final_linear.0.bias',
  'b4.out.weight': 'final_linear.1.weight',
  'b4.out.bias': 'final_linear.1.bias',
};

function discriminatorName(name: string, top: number): MappedName | null {
  if (name.endsWith('resample_filter')) return null;
  if (EPILOGUE[name]) return { name: EPILOGUE[name] };
  const m = /^b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)$/.exec(name);
  if (!m) throw new Error(`unmapped discriminator tensor ${name}`);
  const [res, layer, field] = [Number(m[1]), m[2], m[3]];
  if (layer === 'fromrgb') return { name: field === 'weight' ? 'convs.0.0.weight' : 'convs.0.1.bias' };
  // ResBlock i (from 1) serves block b{top / 2^(i-1)}.
  const block = `convs.${Math.log2(top / res) + 1}`;
  if (layer === 'conv0') return { name: `${block}.conv1.${field === 'weight' ? '0.weight' : '1.bias'}` };
  if (layer === 'conv1') {
    if (field === 'bias') return { name: `${block}.conv2.2.bias` };
    return { name: `${block}.conv2.1.weight`, kernels: [[`${block}.conv2.0.kernel`, 1]] };
  }
  return { name: `${block}.skip.1.weight`, kernels: [[`${block}.skip.0.kernel`, 1]] };
}
