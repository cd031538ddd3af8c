// The shape of a slash command module and of a button handler, and what they get to work with.
import type {
  AutocompleteInteraction,
  ButtonInteraction,
  ChatInputCommandInteraction,
  Client,
  RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';
import type { Actor } from '../jobs/types.ts';
import type { Logger } from '../log.ts';
import type { BotConfig } from './config.ts';
import type { Cooldowns } from './cooldowns.ts';
import type { Acknowledgement, Responder, Visibility } from './respond.ts';
import type { BotServices } from './services.ts';
import type { JobTracker } from './tracker.ts';

/** What every handler can use, for the bot's whole life. */
export interface BotContext {
  services: BotServices;
  config: BotConfig;
  client: Client;
  tracker: JobTracker;
  /** Cooldowns checked before a public acknowledgement. */
  cooldowns: Cooldowns;
  log: Logger;
  /** Every command, for /help. */
  commands: readonly SlashCommand[];
  /** Interaction token lifetime assumed by status messages (Discord: 15 min). */
  tokenLifetimeMs?: number;
  /** How long a new job's reply waits before it shows "Queued" (BotTiming.queuedGraceMs). */
  queuedGraceMs?: number;
}

/** What one interaction's handler gets besides the interaction. */
export interface InteractionContext extends BotContext {
  respond: Responder;
  /** Manage Server (or Administrator) permission, or one of FACESTYLE_ADMIN_ROLES. */
  isAdmin: boolean;
  /**
   * The member as the job queue sees them: their server and their rights there. Every queue call
   * takes this one, so admin rights and server caps always key on the interaction's server.
   */
  actor: Actor;
}

export interface SlashCommand {
  /** The builder; its JSON is what `facestyle register` uploads. */
  data: { name: string; description: string; toJSON(): RESTPostAPIChatInputApplicationCommandsJSONBody };
  /** Who sees the answer; the dispatcher defers with it when a handler is slow to acknowledge. */
  visibility: Visibility;
  /** Refused, server-side, to members who are not admins (whatever Discord's settings let through). */
  adminOnly?: boolean;
  execute(interaction: ChatInputCommandInteraction, ctx: InteractionContext): Promise<void>;
  autocomplete?(interaction: AutocompleteInteraction, ctx: BotContext): Promise<void>;
}

export interface ButtonHandler {
  /** The custom id prefix it answers, before the colon. */
  action: string;
  /** How the dispatcher acknowledges a press the handler is slow to answer. */
  acknowledgement: Acknowledgement;
  execute(interaction: ButtonInteraction, argument: string, ctx: InteractionContext): Promise<void>;
}
