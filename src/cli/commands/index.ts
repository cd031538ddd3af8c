import type { Command } from 'commander';
import { register as bench } from './bench.ts';

/** Every CLI command module's `register`; add new commands here. */
export const commands: Array<(program: Command) => void> = [bench];
