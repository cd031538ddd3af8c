// Payloads are checked field by field at the queue boundary: every kind refuses a bad value of each
// field with an error naming the kind and the field, and refuses fields it does not know.
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.ts';
import { KIND_SPECS } from '../../src/jobs/kinds.ts';

type Case = [field: string, value: unknown, message: RegExp];

function refusals(kind: keyof typeof KIND_SPECS, good: Record<string, unknown>, cases: Case[]) {
  for (const [field, value, message] of cases) {
    it(`refuses ${kind} ${field} = ${JSON.stringify(value) ?? 'nothing'}`, () => {
      const payload = { ...good, [field]: value };
      let thrown: unknown;
      try {
        KIND_SPECS[kind].validate(payload);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(UserError);
      expect((thrown as Error).message).toMatch(message);
      expect((thrown as Error).message.startsWith(kind)).toBe(true);
    });
  }
}

const generate = { checkpoint: 'ffhq256', seeds: [1, 2], psi: 0.7 };
const blend = { base: 'ffhq256', style: 'toons', layer: 32, seeds: [1], psi: 0.7 };
const finetune = { datasetDir: '/d', base: 'ffhq256', epochs: 10, snapshotEvery: 5, runDir: '/r' };
const toonify = { photoPath: '/p.png', style: 'toons', layer: 32 };

describe('generate payloads', () => {
  it('accepts a good one and keeps only known fields', () => {
    expect(KIND_SPECS.generate.validate({ ...generate, grid: true, noiseMode: 'random' })).toEqual({
      ...generate,
      grid: true,
      noiseMode: 'random',
    });
  });
  refusals('generate', generate, [
    ['checkpoint', '', /"checkpoint" must be a non-empty string/],
    ['checkpoint', 42, /"checkpoint" must be a non-empty string/],
    ['seeds', [], /"seeds" must be a list of 1 to 64 items, got 0 items/],
    ['seeds', Array.from({ length: 65 }, (_, i) => i), /got 65 items/],
    ['seeds', [1, -1], /"seeds"\[1\] must be an integer from 0 to 4294967295, got -1/],
    ['seeds', [1.5], /"seeds"\[0\] must be an integer/],
    ['seeds', '1-4', /"seeds" must be a list/],
    ['psi', Number.NaN, /"psi" must be a number from -2 to 2/],
    ['psi', 3, /"psi" must be a number from -2 to 2, got 3/],
    ['psi', undefined, /"psi" must be a number .* got nothing/],
    ['noiseMode', 'loud', /"noiseMode" must be one of const, random, none/],
    ['grid', 'yes', /"grid" must be true or false, got "yes"/],
    ['grid', 1, /"grid" must be true or false/],
    ['extra', 1, /unknown field "extra"/],
  ]);
  it('refuses what is not an object', () => {
    for (const bad of [null, 'x', [1], 3])
      expect(() => KIND_SPECS.generate.validate(bad)).toThrow(/must be an object/);
  });
});

describe('blend payloads', () => {
  it('accepts direction and matrix', () => {
    expect(
      KIND_SPECS.blend.validate({ ...blend, direction: 'structure', matrix: true, width: 2 }),
    ).toMatchObject({
      direction: 'structure',
      matrix: true,
    });
  });
  refusals('blend', blend, [
    ['base', null, /"base" must be a non-empty string/],
    ['style', '', /"style" must be a non-empty string/],
    ['layer', 2, /"layer" must be an integer from 4 to 1024/],
    ['width', 17, /"width" must be an integer from 0 to 16/],
    ['direction', 'sideways', /"direction" must be texture or structure, got "sideways"/],
    ['direction', 1, /"direction" must be texture or structure/],
    ['matrix', 'true', /"matrix" must be true or false/],
    ['seeds', [2 ** 32], /"seeds"\[0\] must be an integer/],
    ['psi', '0.7', /"psi" must be a number/],
  ]);
});

describe('finetune payloads', () => {
  refusals('finetune', finetune, [
    ['datasetDir', '', /"datasetDir" must be a non-empty string/],
    ['runDir', undefined, /"runDir" must be a non-empty string/],
    ['epochs', 0, /"epochs" must be an integer from 1 to 10000/],
    ['snapshotEvery', 11, /"snapshotEvery" must be an integer from 1 to 10 \(the epochs\), got 11/],
    ['batchSize', 0, /"batchSize" must be an integer from 1 to 256/],
    ['learningRate', 2, /"learningRate" must be a number/],
    ['resumeFrom', {}, /unknown field "resumeFrom"/],
  ]);
});

describe('toonify payloads', () => {
  refusals('toonify', toonify, [
    ['photoPath', '', /"photoPath" must be a non-empty string/],
    ['face', 'smallest', /"face" must be "largest" or an integer from 0 to 99, got "smallest"/],
    ['face', 100, /"face" must be "largest" or an integer/],
    ['direction', 'up', /"direction" must be texture or structure/],
    ['width', -1, /"width" must be an integer from 0 to 16/],
    ['steps', 1001, /"steps" must be an integer from 1 to 1000/],
    ['pixelWeight', -1, /"pixelWeight" must be a number from 0 to 100/],
    ['layer', undefined, /"layer" must be an integer from 4 to 1024, got nothing/],
  ]);
  it('accepts face "largest" or a number', () => {
    expect(KIND_SPECS.toonify.validate({ ...toonify, face: 'largest' }).face).toBe('largest');
    expect(KIND_SPECS.toonify.validate({ ...toonify, face: 3 }).face).toBe(3);
  });
});

describe('noop payloads', () => {
  refusals('noop', {}, [
    ['durationMs', -5, /"durationMs" must be an integer from 0 to 600000/],
    ['steps', 'many', /"steps" must be an integer/],
  ]);
});
