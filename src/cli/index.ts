// `facestyle <command>`: each command lives in src/cli/commands/<name>.ts and exports `register`.
import { Command } from 'commander';
import { isUserError } from '../errors.ts';
import { commandModules } from './commands/index.ts';

const program = new Command()
  .name('facestyle')
  .description('StyleGAN2 face generation, fine-tuning and blending, as a CLI and a Discord bot')
  .option(
    '--backend <name>',
    'tensor backend: auto | webgpu | wasm | cpu | tensorflow (or FACESTYLE_BACKEND)',
  )
  .showHelpAfterError();

// Load only the command being run; help (or an unknown command) needs them all.
const requested = commandName(process.argv.slice(2));
const names = requested && requested in commandModules ? [requested] : Object.keys(commandModules);
for (const name of names) (await commandModules[name]()).register(program);

/** The first argument that is neither an option nor the value of the global --backend option. */
function commandName(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--backend') i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (isUserError(err)) {
    process.stderr.write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
    process.exitCode = 1;
  } else {
    // Printed here rather than rethrown: the wasm backend's runtime rethrows uncaught errors from
    // its own handler, which made Node print its 40 KB minified source line and exit with 7.
    process.stderr.write(
      `internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 2;
  }
}
