// seed -> z exactly as NVIDIA's tools derive it: numpy.random.RandomState(seed).randn(1, z_dim),
// i.e. MT19937 seeded with init_genrand(seed), 53-bit doubles from two 32-bit draws, and the
// Marsaglia polar method that caches its second value (numpy's legacy_gauss).
import { UserError } from '../errors.ts';

const N = 624;
const M = 397;
const MAX_SEED = 2 ** 32 - 1;

class MersenneTwister {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed: number) {
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      // 1812433253 * prev + i in uint32 arithmetic, split to stay exact in doubles.
      this.mt[i] =
        (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
    }
  }

  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const mt = this.mt;
    for (let k = 0; k < N; k++) {
      const y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
      mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /** numpy's random_sample: a 53-bit double in [0, 1). */
  nextDouble(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

/** numpy.random.RandomState with the legacy Gaussian generator. */
export class NumpyRandomState {
  private readonly mt: MersenneTwister;
  private cachedGauss: number | null = null;

  constructor(seed: number) {
    assertSeed(seed);
    this.mt = new MersenneTwister(seed);
  }

  randomSample(): number {
    return this.mt.nextDouble();
  }

  /** One standard normal draw (numpy's legacy_gauss). */
  gauss(): number {
    if (this.cachedGauss !== null) {
      const g = this.cachedGauss;
      this.cachedGauss = null;
      return g;
    }
    let x1: number;
    let x2: number;
    let r2: number;
    do {
      x1 = 2 * this.mt.nextDouble() - 1;
      x2 = 2 * this.mt.nextDouble() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt((-2 * Math.log(r2)) / r2);
    this.cachedGauss = f * x1;
    return f * x2;
  }

  randn(count: number): Float64Array {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = this.gauss();
    return out;
  }
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new UserError(`seed must be an integer from 0 to ${MAX_SEED}, got ${seed}`);
  }
}

/** z for a seed in float64, as numpy computes it. */
export function zFromSeed64(seed: number, zDim: number): Float64Array {
  return new NumpyRandomState(seed).randn(zDim);
}

/** z for a seed, rounded to float32 as the official tools do before running the network. */
export function zFromSeed(seed: number, zDim: number): Float32Array {
  return Float32Array.from(zFromSeed64(seed, zDim));
}

/**
 * A face near another: which seed it varies, and how far (0: the same face; 1: as far from it as
 * from any other face, in expectation).
 */
export interface Variation {
  of: number;
  strength: number;
}

/**
 * z of a variation: the face of `variation.of`, moved towards the z of `noiseSeed` by `strength`,
 * scaled back to the length a z of the prior has on average, so the mapping network sees a typical
 * latent.
 */
export function variationZ(variation: Variation, noiseSeed: number, zDim: number): Float32Array {
  const base = zFromSeed64(variation.of, zDim);
  const noise = zFromSeed64(noiseSeed, zDim);
  const k = 1 / Math.sqrt(1 + variation.strength ** 2);
  return Float32Array.from(base, (v, i) => (v + variation.strength * noise[i]) * k);
}

/**
 * Parses "1-16,42,100-102" into seeds (in order, duplicates kept out), at most `maxCount`.
 */
export function parseSeeds(text: string, maxCount = 1024): number[] {
  const seeds: number[] = [];
  const seen = new Set<number>();
  const add = (s: number) => {
    if (!seen.has(s)) {
      seen.add(s);
      seeds.push(s);
    }
  };
  const tooMany = () => new UserError(`too many seeds in "${text}": at most ${maxCount}`);
  const parts = text.split(',').map((p) => p.trim());
  for (const part of parts) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
    if (!m)
      throw new UserError(`cannot read seeds "${text}": "${part}" is not a number or a range like 1-16`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    assertSeed(from);
    assertSeed(to);
    if (to < from) throw new UserError(`cannot read seeds "${text}": range ${part} runs backwards`);
    // The range alone is checked first so that "0-4294967295" fails before looping; overlaps with
    // earlier parts count once, hence the second check while adding.
    if (to - from + 1 > maxCount) throw tooMany();
    for (let s = from; s <= to; s++) {
      add(s);
      if (seeds.length > maxCount) throw tooMany();
    }
  }
  if (seeds.length === 0) throw new UserError('no seeds given');
  return seeds;
}

/** A random seed for rerolls, in the official range. */
export function randomSeed(): number {
  return Math.floor(Math.random() * (MAX_SEED + 1));
}
