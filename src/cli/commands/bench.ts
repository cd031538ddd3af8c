import type { Command } from 'commander';
import { benches } from '../../bench/index.ts';

export function register(program: Command): void {
  const bench = program.command('bench').description('run a benchmark (results go to docs/benchmarks.md)');
  for (const add of benches) add(bench);
}
