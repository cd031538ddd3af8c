import { PassThrough } from 'node:stream';
import { expect, it } from 'vitest';
import { createProgress } from '../../src/cli/progress.ts';

const capture = () => {
  const s = new PassThrough();
  const out = { text: '' };
  s.on('data', (d) => {
    out.text += d;
  });
  return { s, out };
};

it('prints about every 10% and a last line when not a TTY', () => {
  const { s, out } = capture();
  const p = createProgress('gen', 25, { stream: s, interactive: false });
  for (let i = 0; i < 25; i++) p.increment(1, i === 19 ? { loss: 0.5 } : undefined);
  p.stop();
  p.stop();
  const lines = out.text.trim().split('\n');
  expect(lines.length).toBeLessThanOrEqual(10);
  expect(lines.at(-1)).toMatch(/^gen: 100% \(25\/25\).*\| loss 0\.5$/);
});

it('prints a final line at stop when cut short', () => {
  const { s, out } = capture();
  const p = createProgress('x', 7, { stream: s, interactive: false });
  p.update(3);
  p.stop();
  expect(out.text).toMatch(/^x: 42% \(3\/7\)/);
});

it('draws a bar in interactive mode', () => {
  const { s, out } = capture();
  const p = createProgress('gen', 10, { stream: s, interactive: true });
  p.update(10);
  p.stop();
  expect(out.text).toMatch(/gen \[=+\] 100% \| 10\/10/);
});
