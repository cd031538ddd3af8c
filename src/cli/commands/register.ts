// `facestyle register [--guild [id]]`: uploads the bot's slash commands, to one server for
// development (they appear at once) or globally for production.
import type { Command } from 'commander';
import { UserError } from '../../errors.ts';

const SNOWFLAKE = /^\d{17,20}$/;

export function register(program: Command): void {
  program
    .command('register')
    .description(
      'register the slash commands with Discord: in one server with --guild (instant), else globally',
    )
    .option('--guild [id]', 'register in this server only (without an id: DISCORD_DEV_GUILD_ID)')
    .action(async (opts: { guild?: string | true }) => {
      // Imported here so that other commands do not load discord.js.
      const [{ loadDiscordCredentials }, { registerCommands }] = await Promise.all([
        import('../../bot/config.ts'),
        import('../../bot/register.ts'),
      ]);
      const credentials = loadDiscordCredentials();
      let guildId: string | undefined;
      if (opts.guild === true) {
        guildId = credentials.devGuildId;
        if (!guildId)
          throw new UserError('--guild without an id needs DISCORD_DEV_GUILD_ID', 'pass --guild <server id>');
      } else if (opts.guild !== undefined) {
        if (!SNOWFLAKE.test(opts.guild))
          throw new UserError(`--guild must be a server id (17 to 20 digits), got "${opts.guild}"`);
        guildId = opts.guild;
      }
      const result = await registerCommands({ credentials, guildId });
      const where =
        result.scope === 'guild'
          ? `in server ${result.guildId} (available now)`
          : 'globally (may take up to an hour to appear everywhere)';
      process.stdout.write(
        `registered ${result.names.length} commands ${where}: ${result.names.map((n) => `/${n}`).join(' ')}\n`,
      );
      if (result.scope === 'guild') {
        process.stdout.write(
          'note: if the commands are also registered globally, that server shows each twice\n',
        );
      }
    });
}
