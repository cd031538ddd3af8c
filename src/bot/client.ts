// The bot process: a discord.js client, the interaction dispatcher and the job status tracker.
// Every interaction is acknowledged within Discord's 3 s: handlers defer first, and a safety net
// defers for any handler still silent after `ackSafetyMs`. Failures end as ephemeral, specific
// messages; unexpected ones also get a reference that points into the log.
import { randomBytes } from 'node:crypto';
import {
  type AutocompleteInteraction,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  Client,
  type ClientOptions,
  Events,
  GatewayIntentBits,
  type Interaction,
} from 'discord.js';
import { isUserError, UserError } from '../errors.ts';
import { isTerminal } from '../jobs/types.ts';
import { type Logger, logger } from '../log.ts';
import type { BotContext, InteractionContext } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { parseButtonId } from './components/ids.ts';
import { findButtonHandler } from './components/index.ts';
import type { BotConfig } from './config.ts';
import { ContestAnnouncer } from './contest.ts';
import { Cooldowns } from './cooldowns.ts';
import { isGuildAdmin } from './permissions.ts';
import { type Acknowledgement, type AnswerableInteraction, Responder } from './respond.ts';
import type { BotServices } from './services.ts';
import { ChannelMessageTarget, JobTracker } from './tracker.ts';

export interface BotTiming {
  /** A handler that has not acknowledged after this long gets a defer from the dispatcher. */
  ackSafetyMs: number;
  /** Least time between two edits of a job's status message. */
  progressRefreshMs: number;
  /** How often the places in line of waiting jobs are re-read. */
  positionRefreshMs: number;
  /** Interaction token lifetime to plan status messages with (Discord: 15 min). */
  tokenLifetimeMs?: number;
  /** A job still queued this long after its command shows "Queued"; one that starts sooner never does. */
  queuedGraceMs: number;
  /** Owners of jobs that took longer than this from their command are pinged when they end. */
  pingAfterMs: number;
}

export const DEFAULT_TIMING: BotTiming = {
  ackSafetyMs: 1_500,
  progressRefreshMs: 4_000,
  positionRefreshMs: 15_000,
  queuedGraceMs: 1_500,
  pingAfterMs: 20_000,
};

export interface BotOptions {
  config: BotConfig;
  services: BotServices;
  /** Merged over the bot's client options; tests point `rest` at a local Discord. */
  clientOptions?: Partial<ClientOptions>;
  timing?: Partial<BotTiming>;
  log?: Logger;
}

/** What the dispatcher measured for one interaction, for logs and tests. */
export interface InteractionOutcome {
  id: string;
  name: string;
  ok: boolean;
  /** Time from receipt to acknowledgement. */
  ackMs?: number;
  error?: string;
}

export class FacestyleBot {
  readonly client: Client;
  readonly tracker: JobTracker;
  /** The scheduled contest; absent when FACESTYLE_CONTEST_CRON is off. */
  readonly contest?: ContestAnnouncer;
  private readonly context: BotContext;
  private readonly timing: BotTiming;
  private readonly log: Logger;
  private readonly outcomeListeners = new Set<(outcome: InteractionOutcome) => void>();

  constructor(options: BotOptions) {
    this.log = options.log ?? logger('bot');
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.client = new Client({
      // Slash commands and buttons need no privileged intent; Guilds keeps channel caches filled.
      intents: [GatewayIntentBits.Guilds],
      ...options.clientOptions,
    });
    this.tracker = new JobTracker(options.services.jobs, options.services.votes, this.log, {
      refreshMs: this.timing.progressRefreshMs,
      positionRefreshMs: this.timing.positionRefreshMs,
      pingAfterMs: this.timing.pingAfterMs,
    });
    if (options.config.contestSchedule) {
      this.contest = new ContestAnnouncer(this.client, options.services.votes, {
        schedule: options.config.contestSchedule,
        log: this.log,
      });
    }
    this.context = {
      services: options.services,
      config: options.config,
      client: this.client,
      tracker: this.tracker,
      cooldowns: new Cooldowns(),
      log: this.log,
      commands: COMMANDS,
      tokenLifetimeMs: this.timing.tokenLifetimeMs,
      queuedGraceMs: this.timing.queuedGraceMs,
    };
    this.client.on(Events.InteractionCreate, (interaction) => void this.dispatch(interaction));
    this.client.on(Events.Error, (err) => this.log.error('discord client error', { error: err.message }));
    this.client.on(Events.Warn, (message) => this.log.warn(message));
    this.client.on(Events.Debug, (message) => {
      // discord.js prints the token's first parts at login; nothing of the token goes to our logs.
      if (!message.startsWith('Provided token')) this.log.debug(message);
    });
  }

  /** Logs in, waits for the gateway to be ready, and resumes status messages of unfinished jobs. */
  async start(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.client.once(Events.ClientReady, () => resolve()));
    try {
      await this.client.login(this.context.config.token);
    } catch (err) {
      // discord.js says "An invalid token was provided." for a 401: say which setting to fix.
      if ((err as { code?: string }).code === 'TokenInvalid') {
        throw new UserError(
          'Discord rejected DISCORD_TOKEN',
          'reset the token in the Developer Portal (Bot > Reset Token) and set it again',
        );
      }
      throw err;
    }
    await ready;
    this.tracker.start();
    this.contest?.start();
    const resumed = await this.resumeStatusMessages();
    this.log.info('bot ready', {
      user: this.client.user?.tag,
      guilds: this.client.guilds.cache.size,
      resumed,
    });
  }

  async stop(): Promise<void> {
    await this.contest?.stop();
    this.tracker.stop();
    await this.client.destroy();
  }

  /** Called after each interaction is handled. */
  onInteractionHandled(listener: (outcome: InteractionOutcome) => void): () => void {
    this.outcomeListeners.add(listener);
    return () => this.outcomeListeners.delete(listener);
  }

  /**
   * Unfinished jobs whose messages were being edited by a previous run of the bot: fine-tunes keep
   * their channel message; short jobs lost their interaction, so they continue in a new message.
   */
  private async resumeStatusMessages(): Promise<number> {
    const jobs = await this.context.services.jobs.list({ status: ['queued', 'running'], limit: 500 });
    let resumed = 0;
    for (const job of jobs) {
      if (!job.meta.channelId || isTerminal(job.status)) continue;
      const target = new ChannelMessageTarget(
        this.client,
        job.meta.channelId,
        job.meta.statusMessageId,
        job.userId,
      );
      try {
        await this.tracker.watch(job, target);
        resumed++;
      } catch (err) {
        this.log.warn('could not resume a job message', { job: job.id, error: (err as Error).message });
      }
    }
    return resumed;
  }

  private async dispatch(interaction: Interaction): Promise<void> {
    try {
      if (interaction.isChatInputCommand()) await this.runCommand(interaction);
      else if (interaction.isButton()) await this.runButton(interaction);
      else if (interaction.isAutocomplete()) await this.runAutocomplete(interaction);
    } catch (err) {
      this.log.error('interaction dispatch failed', { id: interaction.id, error: (err as Error).message });
    }
  }

  private async runCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    const command = COMMANDS.find((c) => c.data.name === interaction.commandName);
    await this.handle(
      interaction,
      `/${interaction.commandName}`,
      command?.visibility ?? 'ephemeral',
      async (ctx) => {
        if (!command) {
          throw new UserError(
            `this bot has no /${interaction.commandName} command any more`,
            'see /help for the current commands',
          );
        }
        if (command.adminOnly && !ctx.isAdmin) {
          throw new UserError(
            `/${command.data.name} is for admins only`,
            'admins are members with Manage Server or one of the roles the bot operator configured',
          );
        }
        await command.execute(interaction, ctx);
      },
    );
  }

  private async runButton(interaction: ButtonInteraction): Promise<void> {
    const { action, argument } = parseButtonId(interaction.customId);
    const handler = findButtonHandler(action);
    await this.handle(
      interaction,
      `button ${action}`,
      handler?.acknowledgement ?? 'ephemeral',
      async (ctx) => {
        if (!handler || !argument) {
          throw new UserError(
            'this button is no longer supported',
            'use /help to see what the bot can do now',
          );
        }
        await handler.execute(interaction, argument, ctx);
      },
    );
  }

  private async runAutocomplete(interaction: AutocompleteInteraction): Promise<void> {
    const command = COMMANDS.find((c) => c.data.name === interaction.commandName);
    try {
      if (command?.autocomplete) await command.autocomplete(interaction, this.context);
      else await interaction.respond([]);
    } catch (err) {
      // Suggestions are optional: an empty list is a fine answer to a failure.
      this.log.warn('autocomplete failed', {
        command: interaction.commandName,
        error: (err as Error).message,
      });
      if (!interaction.responded) await interaction.respond([]).catch(() => {});
    }
  }

  /** Runs a handler with its responder, the acknowledgement safety net and error replies. */
  private async handle(
    interaction: AnswerableInteraction,
    name: string,
    acknowledgement: Acknowledgement,
    run: (ctx: InteractionContext) => Promise<void>,
  ): Promise<void> {
    const receivedAt = Date.now();
    const respond = new Responder(interaction);
    const isAdmin = isGuildAdmin(interaction, this.context.config.adminRoleIds);
    const ctx: InteractionContext = {
      ...this.context,
      respond,
      isAdmin,
      // Outside a server (refused below) the member has no server and no admin rights.
      actor: interaction.guildId
        ? { userId: interaction.user.id, guildId: interaction.guildId, isAdmin }
        : { userId: interaction.user.id, guildId: '', isAdmin: false },
    };
    const safetyNet = setTimeout(() => {
      respond
        .acknowledge(acknowledgement)
        .catch((err) => this.log.warn('safety-net defer failed', { name, error: (err as Error).message }));
    }, this.timing.ackSafetyMs);
    const outcome: InteractionOutcome = { id: interaction.id, name, ok: true };
    try {
      // Votes, quotas and admin roles are per server; the commands are registered for servers only.
      if (!interaction.inGuild())
        throw new UserError('facestyle works in servers only', 'use the command in a server channel');
      await run(ctx);
    } catch (err) {
      outcome.ok = false;
      outcome.error = (err as Error).message;
      await this.reportFailure(respond, name, err);
    } finally {
      clearTimeout(safetyNet);
      outcome.ackMs = respond.acknowledgedAt === undefined ? undefined : respond.acknowledgedAt - receivedAt;
      this.log.info('interaction', {
        name,
        user: interaction.user.id,
        guild: interaction.guildId,
        ok: outcome.ok,
        ackMs: outcome.ackMs,
        ...(outcome.ok ? {} : { error: outcome.error }),
      });
      for (const listener of this.outcomeListeners) listener(outcome);
    }
  }

  private async reportFailure(respond: Responder, name: string, err: unknown): Promise<void> {
    const reference = randomBytes(4).toString('hex');
    if (!isUserError(err)) {
      this.log.error('interaction failed', {
        name,
        reference,
        error: (err as Error).message,
        stack: (err as Error).stack,
      });
    }
    try {
      await respond.fail(err, reference);
    } catch (replyErr) {
      this.log.warn('could not tell the member about a failure', {
        name,
        reference,
        error: (replyErr as Error).message,
      });
    }
  }
}
