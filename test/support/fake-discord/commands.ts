// Application command registration as Discord checks it: bulk overwrite with Discord's naming and
// size rules (names, descriptions, 25 options, required options first, 100 commands), ids kept for
// commands whose name did not change.
import { type APIApplicationCommand, ApplicationCommandType } from 'discord.js';
import { DiscordHttpError } from './messages.ts';
import { snowflake } from './snowflake.ts';

const NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;
const MAX_COMMANDS = 100;
const MAX_OPTIONS = 25;
const MAX_CHOICES = 25;
const SUBCOMMAND_TYPES = new Set([1, 2]);

interface RawOption {
  type: number;
  name: string;
  description: string;
  required?: boolean;
  choices?: unknown[];
  options?: RawOption[];
}

interface RawCommand {
  name: string;
  description?: string;
  type?: number;
  options?: RawOption[];
  default_member_permissions?: string | null;
  contexts?: number[] | null;
  integration_types?: number[];
  nsfw?: boolean;
}

function invalid(path: string, message: string): DiscordHttpError {
  return new DiscordHttpError(400, 50035, 'Invalid Form Body', {
    [path]: { _errors: [{ code: 'APPLICATION_COMMAND_INVALID', message }] },
  });
}

function checkName(name: unknown, path: string, chatInput: boolean): void {
  if (typeof name !== 'string' || !NAME.test(name)) throw invalid(`${path}.name`, 'Command name is invalid');
  if (chatInput && name !== name.toLowerCase())
    throw invalid(`${path}.name`, 'Command name must be lower case');
}

function checkDescription(description: unknown, path: string): void {
  if (typeof description !== 'string' || description.length < 1 || description.length > 100) {
    throw invalid(`${path}.description`, 'Must be between 1 and 100 in length.');
  }
}

function checkOptions(options: RawOption[] | undefined, path: string): void {
  if (!options) return;
  if (options.length > MAX_OPTIONS)
    throw invalid(`${path}.options`, `Must be ${MAX_OPTIONS} or fewer in length.`);
  let optionalSeen = false;
  const names = new Set<string>();
  options.forEach((option, i) => {
    const at = `${path}.options.${i}`;
    checkName(option.name, at, true);
    checkDescription(option.description, at);
    if (names.has(option.name))
      throw invalid(`${at}.name`, 'Application command option names must be unique');
    names.add(option.name);
    if (option.required && optionalSeen)
      throw invalid(at, 'Required options must be placed before non-required options');
    if (!option.required) optionalSeen = true;
    if ((option.choices?.length ?? 0) > MAX_CHOICES) throw invalid(`${at}.choices`, 'Too many choices.');
    if (SUBCOMMAND_TYPES.has(option.type)) checkOptions(option.options, at);
  });
}

/** Checks a bulk overwrite body and returns the stored commands (ids kept by name). */
export function overwriteCommands(
  body: unknown,
  previous: APIApplicationCommand[],
  applicationId: string,
  guildId?: string,
): APIApplicationCommand[] {
  if (!Array.isArray(body)) throw invalid('_root', 'Expected an array of commands');
  if (body.length > MAX_COMMANDS) throw invalid('_root', `Must be ${MAX_COMMANDS} or fewer in length.`);
  const names = new Set<string>();
  return (body as RawCommand[]).map((command, i) => {
    const type = command.type ?? ApplicationCommandType.ChatInput;
    const chatInput = type === ApplicationCommandType.ChatInput;
    checkName(command.name, String(i), chatInput);
    if (chatInput) checkDescription(command.description, String(i));
    checkOptions(command.options, String(i));
    const key = `${type}:${command.name}`;
    if (names.has(key)) throw invalid(`${i}.name`, 'Application command names must be unique');
    names.add(key);
    const kept = previous.find((c) => c.name === command.name && c.type === type);
    return {
      id: kept?.id ?? snowflake(),
      application_id: applicationId,
      version: snowflake(),
      type,
      name: command.name,
      description: command.description ?? '',
      options: command.options ?? [],
      default_member_permissions: command.default_member_permissions ?? null,
      contexts: command.contexts ?? null,
      integration_types: command.integration_types ?? [0],
      nsfw: command.nsfw ?? false,
      ...(guildId ? { guild_id: guildId } : {}),
    } as APIApplicationCommand;
  });
}
