// Adam with PyTorch's semantics over named variables.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/model/backend.ts';
import { tf } from '../../src/model/tf.ts';
import { Adam, STYLEGAN2_ADAM, sanitizeGradient } from '../../src/model/train/adam.ts';

function store(values: Record<string, number[]>): Map<string, tf.Variable> {
  return new Map(
    Object.entries(values).map(([name, v]) => [
      name,
      tf.variable(tf.tensor1d(v), true, `${name}-${Math.random()}`),
    ]),
  );
}

async function values(v: tf.Tensor): Promise<number[]> {
  return Array.from(await v.data());
}

describe('Adam', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('with betas (0, 0.99) takes the PyTorch steps: first step lr * sign(g), then bias-corrected', async () => {
    const params = store({ w: [1, -1] });
    const adam = new Adam({ lr: 0.1, ...STYLEGAN2_ADAM });
    adam.apply(params, { w: tf.tensor1d([0.5, -3]) });
    const first = await values(params.get('w')!);
    expect(first[0]).toBeCloseTo(0.9, 6);
    expect(first[1]).toBeCloseTo(-0.9, 6);
    // Step 2, g = -0.2 on w[0]: m = -0.2, v = 0.99 * 0.0025 + 0.01 * 0.04, denominator
    // sqrt(v) / sqrt(1 - 0.99^2) (+ eps): w = 0.9 + 0.1 * 0.2 / 0.380094...
    adam.apply(params, { w: tf.tensor1d([-0.2, 0]) });
    const v2 = 0.99 * 0.0025 + 0.01 * 0.04;
    const expected = 0.9 + (0.1 * 0.2) / (Math.sqrt(v2) / Math.sqrt(1 - 0.99 ** 2) + 1e-8);
    expect((await values(params.get('w')!))[0]).toBeCloseTo(expected, 6);
    expect(adam.steps('w')).toBe(2);
  });

  it('matches tf.train.adam (same rule) over several steps with beta1 > 0', async () => {
    const hp = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    const ours = store({ w: [0.3, -0.7, 2] });
    const theirs = tf.variable(tf.tensor1d([0.3, -0.7, 2]), true, `theirs-${Math.random()}`);
    const adam = new Adam(hp);
    const reference = tf.train.adam(hp.lr, hp.beta1, hp.beta2, hp.eps);
    for (let step = 0; step < 5; step++) {
      const g = tf.tensor1d([Math.sin(step), 0.1 * step - 0.2, 1 / (step + 1)]);
      adam.apply(ours, { w: g });
      reference.applyGradients([{ name: theirs.name, tensor: g }]);
    }
    const a = await values(ours.get('w')!);
    const b = await values(theirs);
    a.forEach((v, i) => {
      expect(v).toBeCloseTo(b[i], 6);
    });
  });

  it('leaves parameters without a gradient and their step counts alone', async () => {
    const params = store({ a: [1], b: [2] });
    const adam = new Adam({ lr: 0.5, ...STYLEGAN2_ADAM });
    adam.apply(params, new Map([['a', tf.tensor1d([1])]]));
    expect(await values(params.get('b')!)).toEqual([2]);
    expect([adam.steps('a'), adam.steps('b')]).toEqual([1, 0]);
    expect(() => adam.apply(params, { c: tf.tensor1d([1]) })).toThrow(/unknown parameter c/);
    expect(() => adam.apply(params, { a: tf.tensor1d([1, 2]) })).toThrow(/shape/);
  });

  it('resumes from a snapshot exactly', async () => {
    const hp = { lr: 0.05, ...STYLEGAN2_ADAM };
    const grads = [0.3, -1, 0.7, 0.2].map((g) => tf.tensor1d([g, -g]));
    const straight = store({ w: [0.5, 0.5] });
    const adam = new Adam(hp);
    for (const g of grads) adam.apply(straight, { w: g });

    const resumed = store({ w: [0.5, 0.5] });
    const before = new Adam(hp);
    before.apply(resumed, { w: grads[0] });
    before.apply(resumed, { w: grads[1] });
    const snap = before.snapshot();
    expect([...snap.tensors.keys()]).toEqual(['w.exp_avg', 'w.exp_avg_sq']);
    before.dispose();
    const after = new Adam(hp);
    after.restore(snap);
    tf.dispose([...snap.tensors.values()]);
    after.apply(resumed, { w: grads[2] });
    after.apply(resumed, { w: grads[3] });
    expect(await values(resumed.get('w')!)).toEqual(await values(straight.get('w')!));
    expect(() => after.restore({ steps: { w: 1 }, tensors: new Map() })).toThrow(/incomplete/);
  });

  it('sanitises gradients as the official loop does and rejects bad hyperparameters', async () => {
    const g = sanitizeGradient(
      tf.tensor1d([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3]),
    );
    expect(await values(g)).toEqual([0, 1e5, -1e5, 3]);
    expect(() => new Adam({ lr: 0, beta1: 0, beta2: 0.99, eps: 1e-8 })).toThrow(RangeError);
    expect(() => new Adam({ lr: 1, beta1: 1, beta2: 0.99, eps: 1e-8 })).toThrow(RangeError);
  });
});
