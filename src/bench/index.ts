import type { Command } from 'commander';

/**
 * Benchmarks, run as `npm run bench -- <name> [options]`. Each module in src/bench registers one
 * subcommand of `facestyle bench` and prints a Markdown table row set for docs/benchmarks.md.
 */
export const benches: Array<(bench: Command) => void> = [];
