// Uploads the slash commands to Discord: to one guild during development (they appear at once), or
// globally for production (every guild, after Discord's propagation). A bulk overwrite: commands
// that are no longer in the list disappear, renamed ones keep nothing of the old.
import { DiscordAPIError, REST, type RESTOptions, Routes } from 'discord.js';
import { UserError } from '../errors.ts';
import type { SlashCommand } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import type { DiscordCredentials } from './config.ts';

export interface RegisterOptions {
  credentials: DiscordCredentials;
  /** Register in this guild only; global when absent. */
  guildId?: string;
  commands?: readonly SlashCommand[];
  /** REST client options (tests point `api` at a local Discord). */
  rest?: Partial<RESTOptions>;
}

export interface RegisterResult {
  scope: 'guild' | 'global';
  guildId?: string;
  names: string[];
}

export async function registerCommands(options: RegisterOptions): Promise<RegisterResult> {
  const { credentials, guildId } = options;
  const body = (options.commands ?? COMMANDS).map((command) => command.data.toJSON());
  const rest = new REST({ version: '10', ...options.rest }).setToken(credentials.token);
  const route = guildId
    ? Routes.applicationGuildCommands(credentials.applicationId, guildId)
    : Routes.applicationCommands(credentials.applicationId);
  let stored: Array<{ name: string }>;
  try {
    stored = (await rest.put(route, { body })) as Array<{ name: string }>;
  } catch (err) {
    throw explain(err, credentials, guildId);
  }
  return { scope: guildId ? 'guild' : 'global', guildId, names: stored.map((c) => c.name) };
}

function explain(err: unknown, credentials: DiscordCredentials, guildId: string | undefined): Error {
  if (!(err instanceof DiscordAPIError)) return err as Error;
  if (err.status === 401) {
    return new UserError(
      'Discord rejected DISCORD_TOKEN',
      'reset the token in the Developer Portal (Bot > Reset Token) and set it again',
    );
  }
  if (err.status === 403 || err.code === 50001) {
    return new UserError(
      guildId
        ? `the bot cannot manage commands in guild ${guildId} (${err.message})`
        : `the token cannot manage commands of application ${credentials.applicationId} (${err.message})`,
      guildId
        ? 'invite the bot to that server with the applications.commands scope, or check DISCORD_DEV_GUILD_ID'
        : 'check that DISCORD_APPLICATION_ID belongs to the same application as DISCORD_TOKEN',
    );
  }
  if (err.status === 404) {
    return new UserError(`unknown application ${credentials.applicationId}`, 'check DISCORD_APPLICATION_ID');
  }
  // 400s here mean a command definition breaks Discord's rules: a bug to fix in src/bot/commands.
  return new Error(`Discord refused the command list: ${err.message} (${JSON.stringify(err.rawError)})`);
}
