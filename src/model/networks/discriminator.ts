import { channelsAt, type DiscriminatorConfig } from '../config.ts';
import { withConvOps } from '../ops/conv.ts';
import type { ParamStore } from '../params.ts';
import { tf } from '../tf.ts';
import {
  assertShape,
  broadcastCopies,
  Conv2dLayer,
  FullyConnectedLayer,
  Module,
  type NetworkOptions,
} from './layers.ts';
import {
  type DiscriminatorBlockShape,
  discriminatorBlocks,
  discriminatorSpecs,
  type ParamSpec,
} from './specs.ts';

/** One resolution of the `resnet` discriminator: [fromrgb] + conv0 + conv1 (down 2), plus a 1x1 skip. */
export class DiscriminatorBlock extends Module {
  readonly fromrgb: Conv2dLayer | null;
  readonly conv0: Conv2dLayer;
  readonly conv1: Conv2dLayer;
  readonly skip: Conv2dLayer;

  readonly resolution: number;

  constructor(
    { resolution, inChannels, tmpChannels, outChannels }: DiscriminatorBlockShape,
    cfg: DiscriminatorConfig,
  ) {
    super(`b${resolution}.`);
    this.resolution = resolution;
    const convClamp = cfg.convClamp;
    this.fromrgb =
      inChannels === 0
        ? new Conv2dLayer(`${this.prefix}fromrgb.`, cfg.imgChannels, tmpChannels, 1, {
            activation: 'lrelu',
            convClamp,
          })
        : null;
    const c0In = inChannels === 0 ? tmpChannels : inChannels;
    this.conv0 = new Conv2dLayer(`${this.prefix}conv0.`, c0In, tmpChannels, 3, {
      activation: 'lrelu',
      convClamp,
    });
    this.conv1 = new Conv2dLayer(`${this.prefix}conv1.`, tmpChannels, outChannels, 3, {
      activation: 'lrelu',
      down: 2,
      convClamp,
    });
    this.skip = new Conv2dLayer(`${this.prefix}skip.`, c0In, outChannels, 1, {
      bias: false,
      down: 2,
      convClamp,
    });
  }

  forward(params: ParamStore, x: tf.Tensor4D | null, img: tf.Tensor4D | null): tf.Tensor4D {
    let h: tf.Tensor4D;
    if (this.fromrgb) {
      tf.util.assert(img !== null, () => `${this.prefix}: missing image`);
      h = this.fromrgb.forward(params, img!);
    } else {
      h = x!;
    }
    const y = this.skip.forward(params, h, Math.SQRT1_2);
    h = this.conv0.forward(params, h);
    h = this.conv1.forward(params, h, Math.SQRT1_2);
    return tf.add(y, h) as tf.Tensor4D;
  }
}

/**
 * Minibatch standard deviation: per group of `groupSize` samples (samples i, i + N/G, ... as the
 * official reshape [G, N/G, ...] groups them), the mean over channels and pixels of the std over the
 * group, appended as `numChannels` extra feature maps.
 */
export class MinibatchStdLayer {
  constructor(
    readonly groupSize: number,
    readonly numChannels: number,
  ) {}

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const [n, h, w, c] = x.shape;
    const g = Math.min(this.groupSize, n);
    tf.util.assert(n % g === 0, () => `minibatch-std: batch ${n} is not divisible by group size ${g}`);
    const f = this.numChannels;
    const groups = n / g;
    // Ranks stay <= 4 (tfjs has no rank-5 tile gradient; webgpu falls back to the CPU above rank 4).
    // NHWC -> [G, n, H*W*F, c]: group member j of group i is sample j*n + i.
    let y: tf.Tensor = tf.reshape(x, [g, groups, h * w * f, c / f]);
    y = tf.sub(y, tf.mean(y, 0, true));
    y = tf.mean(tf.square(y), 0); // [n, H*W*F, c]: variance over the group
    y = tf.sqrt(tf.add(y, 1e-8));
    y = tf.mean(tf.reshape(y, [groups, h * w, f, c / f]), [1, 3]); // [n, F]
    y = broadcastCopies(tf.reshape(y, [1, groups, f]), [g, groups, f]); // [G, n, F] -> sample order
    y = broadcastCopies(tf.reshape(y, [n, 1, 1, f]), [n, h, w, f]);
    return tf.concat([x, y as tf.Tensor4D], 3);
  }
}

/** The 4x4 head: minibatch-std, conv, FC, output FC (unconditional: one logit). */
export class DiscriminatorEpilogue extends Module {
  readonly mbstd: MinibatchStdLayer;
  readonly conv: Conv2dLayer;
  readonly fc: FullyConnectedLayer;
  readonly out: FullyConnectedLayer;

  constructor(
    readonly channels: number,
    cfg: DiscriminatorConfig,
  ) {
    super('b4.');
    this.mbstd = new MinibatchStdLayer(cfg.mbstdGroupSize, cfg.mbstdChannels);
    this.conv = new Conv2dLayer('b4.conv.', channels + cfg.mbstdChannels, channels, 3, {
      activation: 'lrelu',
      convClamp: cfg.convClamp,
    });
    this.fc = new FullyConnectedLayer('b4.fc.', channels * 16, channels, { activation: 'lrelu' });
    this.out = new FullyConnectedLayer('b4.out.', channels, 1);
  }

  forward(params: ParamStore, x: tf.Tensor4D): tf.Tensor2D {
    assertShape(x, [null, 4, 4, this.channels], 'discriminator epilogue input');
    let h = this.mbstd.forward(x);
    h = this.conv.forward(params, h);
    // The official FC layer flattens NCHW feature maps: match its order.
    const flat = tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [h.shape[0], this.channels * 16]) as tf.Tensor2D;
    return this.out.forward(params, this.fc.forward(params, flat));
  }
}

/** The StyleGAN2 `resnet` discriminator: NHWC images in [-1, 1] -> logits [N, 1]. */
export class Discriminator {
  readonly blocks: DiscriminatorBlock[];
  readonly epilogue: DiscriminatorEpilogue;

  constructor(
    readonly cfg: DiscriminatorConfig,
    readonly params: ParamStore,
    readonly opts: NetworkOptions = {},
  ) {
    this.blocks = discriminatorBlocks(cfg).map((shape) => new DiscriminatorBlock(shape, cfg));
    this.epilogue = new DiscriminatorEpilogue(channelsAt(cfg, 4), cfg);
  }

  /** The parameters this network reads (see specs.ts). */
  static specs(cfg: DiscriminatorConfig): ParamSpec[] {
    return discriminatorSpecs(cfg);
  }

  /** Features entering block at `resolution` are the output of the previous block; exposed for perceptual losses. */
  forward(img: tf.Tensor4D, opts: { features?: tf.Tensor4D[] } = {}): tf.Tensor2D {
    return withConvOps(this.opts.convOps, () => this.forwardBlocks(img, opts));
  }

  private forwardBlocks(img: tf.Tensor4D, opts: { features?: tf.Tensor4D[] }): tf.Tensor2D {
    const r = this.cfg.resolution;
    assertShape(img, [null, r, r, this.cfg.imgChannels], 'discriminator input');
    let x: tf.Tensor4D | null = null;
    for (const block of this.blocks) {
      x = block.forward(this.params, x, img);
      opts.features?.push(x);
    }
    return this.epilogue.forward(this.params, x!);
  }
}
