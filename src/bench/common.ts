import { cpus, totalmem } from 'node:os';
import type { BackendInfo } from '../model/backend.ts';

export function machineDescription(info?: BackendInfo): string {
  const cpu = `${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
  const adapter = info?.adapter
    ? `; GPU ${info.adapter.description || info.adapter.device} (${info.adapter.vendor}${info.adapter.isSoftware ? ', software' : ''})`
    : '';
  return `${cpu}${adapter}`;
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}

export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Runs `step` until `minSeconds` have passed (after `warmup` untimed calls); returns calls/s. */
export async function timeIt(
  step: () => Promise<void>,
  { warmup = 2, minSeconds = 5, minIters = 3 } = {},
): Promise<{ perSecond: number; iters: number; seconds: number }> {
  for (let i = 0; i < warmup; i++) await step();
  const start = performance.now();
  let iters = 0;
  while (iters < minIters || performance.now() - start < minSeconds * 1000) {
    await step();
    iters++;
  }
  const seconds = (performance.now() - start) / 1000;
  return { perSecond: iters / seconds, iters, seconds };
}
