// How far a generator (a blend, a snapshot) sits between two image sets: KID against the base's
// training images and against the style's, and the share of the way toward the style,
// toward = KID(base) / (KID(base) + KID(style)): 0 looks like the base's data, 1 like the style's.
// Negative KIDs (sampling noise around zero) count as zero.
import type { RgbImage } from '../../images/tensor-image.ts';
import type { Generator } from '../../model/networks/generator.ts';
import { DEFAULT_FEATURE_NETWORK, type FeatureExtractor, sharedFeatureExtractor } from './features.ts';
import { type FeatureMatrix, type KidResult, kernelInceptionDistance } from './kid.ts';
import { renderImages } from './sources.ts';

export interface StylePosition {
  base: KidResult;
  style: KidResult;
  /** 0 = the base's images, 1 = the style's. */
  toward: number;
}

export function towardStyle(kidBase: number, kidStyle: number): number {
  const b = Math.max(0, kidBase);
  const s = Math.max(0, kidStyle);
  return b + s === 0 ? 0.5 : b / (b + s);
}

export class StyleMeter {
  private constructor(
    readonly extractor: FeatureExtractor,
    private readonly baseFeatures: FeatureMatrix,
    private readonly styleFeatures: FeatureMatrix,
    /** Images rendered per measurement (seeds seed, seed + 1, ...). */
    readonly count: number,
    readonly seed: number,
  ) {}

  /** Featurises both training sets once; `count` is capped by the smaller set. */
  static async create(
    baseImages: RgbImage[],
    styleImages: RgbImage[],
    opts: { count: number; seed?: number; network?: string },
  ): Promise<StyleMeter> {
    const extractor = await sharedFeatureExtractor(opts.network ?? DEFAULT_FEATURE_NETWORK);
    const count = Math.min(opts.count, baseImages.length, styleImages.length);
    return new StyleMeter(
      extractor,
      await extractor.features(baseImages.slice(0, count)),
      await extractor.features(styleImages.slice(0, count)),
      count,
      opts.seed ?? 0,
    );
  }

  get metric(): string {
    return this.extractor.network.scoreName;
  }

  async measure(G: Generator, psi = 1): Promise<StylePosition> {
    const images = await renderImages(G, { count: this.count, seed: this.seed, psi });
    const features = await this.extractor.features(images);
    const base = kernelInceptionDistance(this.baseFeatures, features, { seed: this.seed });
    const style = kernelInceptionDistance(this.styleFeatures, features, { seed: this.seed });
    return { base, style, toward: towardStyle(base.kid, style.kid) };
  }
}
