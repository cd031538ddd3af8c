// Images per synthesis pass: wasm aborts the whole process when a pass outgrows its 4 GiB heap
// (seen at 256x256 paper256 sizes with 16 images), so generation splits big batches there.
import { describe, expect, it } from 'vitest';
import { defaultGeneratorConfig, paper256Config } from '../src/model/config.ts';
import { imagesPerPass } from '../src/model/sampling.ts';

describe('imagesPerPass', () => {
  const paper256 = paper256Config().G;

  it('keeps 256x256 paper256 passes on wasm at the 8 images that were seen to run', () => {
    expect(imagesPerPass(paper256, 32, 'wasm')).toBe(8);
    expect(imagesPerPass(paper256, 16, 'wasm')).toBe(8);
    expect(imagesPerPass(paper256, 3, 'wasm')).toBe(3);
  });

  it('shrinks with the resolution, down to one image a pass, never zero', () => {
    const at = (resolution: number, channelBase = paper256.channelBase) =>
      imagesPerPass({ ...paper256, resolution, channelBase }, 64, 'wasm');
    expect(at(512)).toBeLessThan(at(256));
    expect(at(1024)).toBeLessThan(at(512));
    // The official FFHQ 1024 sizes (channel_base 32768): one image already takes most of the budget.
    expect(at(1024, 32768)).toBe(1);
  });

  it('lets small models and other backends run the whole batch in one pass', () => {
    const demo = defaultGeneratorConfig({ resolution: 32, channelBase: 1024, channelMax: 128 });
    expect(imagesPerPass(demo, 16, 'wasm')).toBe(16);
    expect(imagesPerPass(paper256, 32, 'webgpu')).toBe(32);
    expect(imagesPerPass(paper256, 32, 'cpu')).toBe(32);
  });
});
