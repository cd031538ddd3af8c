// The entry point scripts/gpu-bench.sh bundles for the device machine: the `generate`, `train` and
// `profile` benches with the same flags as `npm run bench -- ...`, without the CLI's other commands
// (the bot, the queue, the database clients), so that node, one bundle and a few native files carry.
import { Command } from 'commander';
import { register as generate } from '../src/bench/generate.ts';
import { register as profile } from '../src/bench/profile.ts';
import { register as train } from '../src/bench/train.ts';

const program = new Command('gpu-bench').option('--backend <name>', 'tfjs backend', 'webgpu');
for (const register of [generate, train, profile]) register(program);
await program.parseAsync(process.argv);
