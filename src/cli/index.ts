// `facestyle <command>`: each command lives in src/cli/commands/<name>.ts and exports `register`.
import { Command } from 'commander';
import { isUserError } from '../errors.ts';
import { commands } from './commands/index.ts';

const program = new Command()
  .name('facestyle')
  .description('StyleGAN2 face generation, fine-tuning and blending, as a CLI and a Discord bot')
  .option(
    '--backend <name>',
    'tensor backend: auto | webgpu | wasm | cpu | tensorflow (or FACESTYLE_BACKEND)',
  )
  .showHelpAfterError();

for (const register of commands) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (isUserError(err)) {
    process.stderr.write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    process.exitCode = 1;
  } else {
    throw err;
  }
}
