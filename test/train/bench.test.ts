// The training benchmark times real minibatches of the full loop.
import { beforeAll, describe, expect, it } from 'vitest';
import { benchTraining } from '../../src/bench/train.ts';
import { initBackend } from '../../src/model/backend.ts';

describe('training benchmark', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('reports seconds per kimg over the timed minibatches', async () => {
    const r = await benchTraining({
      resolution: 8,
      channelBase: 64,
      channelMax: 8,
      mappingLayers: 2,
      zDim: 8,
      wDim: 8,
      batchSize: 4,
      steps: 3,
      warmup: 1,
    });
    expect(r.stepsTimed).toBe(2);
    expect(r.secondsPerKimg).toBeGreaterThan(0);
    expect(r.imagesPerSecond * r.secondsPerKimg).toBeCloseTo(1000, 6);
  });
});
