// Raw Discord API objects the way Discord sends them: users, guilds, members and the
// INTERACTION_CREATE payloads a test injects. Built with the same field set real payloads carry, so
// discord.js parses them exactly as it parses Discord's.
import { randomBytes } from 'node:crypto';
import {
  type APIApplicationCommandInteractionDataOption,
  type APIAttachment,
  type APIChatInputApplicationCommandInteraction,
  type APIGuildMember,
  type APIInteractionGuildMember,
  type APIMessage,
  type APIMessageComponentButtonInteraction,
  type APIRole,
  type APITextChannel,
  type APIUser,
  ApplicationCommandOptionType,
  ApplicationCommandType,
  type ChannelFlags,
  ChannelType,
  ComponentType,
  type GuildMemberFlags,
  InteractionContextType,
  InteractionType,
  PermissionFlagsBits,
  type RoleFlags,
} from 'discord.js';
import { snowflake } from './snowflake.ts';

/** What a plain member may do in a text channel (Discord's default @everyone permissions, roughly). */
export const MEMBER_PERMISSIONS =
  PermissionFlagsBits.ViewChannel |
  PermissionFlagsBits.SendMessages |
  PermissionFlagsBits.EmbedLinks |
  PermissionFlagsBits.AttachFiles |
  PermissionFlagsBits.ReadMessageHistory |
  PermissionFlagsBits.UseApplicationCommands |
  PermissionFlagsBits.AddReactions;

/** What the bot may do in the fake's channels (what the install link asks for). */
export const BOT_PERMISSIONS = MEMBER_PERMISSIONS;

export const DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024;

export function makeUser(fields: { id?: string; username?: string; bot?: boolean } = {}): APIUser {
  const id = fields.id ?? snowflake();
  const username = fields.username ?? `user${id.slice(-4)}`;
  return {
    id,
    username,
    global_name: username,
    discriminator: '0',
    avatar: null,
    ...(fields.bot ? { bot: true } : {}),
  };
}

export interface FakeGuildSpec {
  id?: string;
  name?: string;
  ownerId?: string;
  /** Text channels; one called "general" when absent. */
  channels?: Array<{ id?: string; name: string }>;
  /** Roles besides @everyone. */
  roles?: Array<{ id?: string; name: string; permissions?: bigint }>;
}

export interface FakeGuild {
  id: string;
  name: string;
  ownerId: string;
  channels: APITextChannel[];
  roles: APIRole[];
}

function makeRole(id: string, name: string, permissions: bigint, position: number): APIRole {
  return {
    id,
    name,
    color: 0,
    colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    icon: null,
    unicode_emoji: null,
    position,
    permissions: permissions.toString(),
    managed: false,
    mentionable: false,
    flags: 0 as RoleFlags,
  };
}

export function makeGuild(spec: FakeGuildSpec = {}): FakeGuild {
  const id = spec.id ?? snowflake();
  const channels = (spec.channels ?? [{ name: 'general' }]).map(
    (channel, position): APITextChannel => ({
      id: channel.id ?? snowflake(),
      type: ChannelType.GuildText,
      guild_id: id,
      name: channel.name,
      position,
      permission_overwrites: [],
      parent_id: null,
      nsfw: false,
      topic: null,
      last_message_id: null,
      rate_limit_per_user: 0,
      flags: 0 as ChannelFlags,
    }),
  );
  const roles = [
    makeRole(id, '@everyone', MEMBER_PERMISSIONS, 0),
    ...(spec.roles ?? []).map((role, index) =>
      makeRole(role.id ?? snowflake(), role.name, role.permissions ?? MEMBER_PERMISSIONS, index + 1),
    ),
  ];
  return {
    id,
    name: spec.name ?? `guild ${id.slice(-4)}`,
    ownerId: spec.ownerId ?? snowflake(),
    channels,
    roles,
  };
}

export function makeMember(user: APIUser, roles: string[] = []): APIGuildMember {
  return {
    user,
    nick: null,
    avatar: null,
    banner: null,
    roles,
    joined_at: new Date(0).toISOString(),
    premium_since: null,
    deaf: false,
    mute: false,
    flags: 0 as GuildMemberFlags,
    pending: false,
    communication_disabled_until: null,
  };
}

/** GUILD_CREATE's payload for the bot's view of a guild. */
export function guildCreatePayload(guild: FakeGuild, bot: APIUser): Record<string, unknown> {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    banner: null,
    description: null,
    owner_id: guild.ownerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    mfa_level: 0,
    nsfw_level: 0,
    premium_tier: 0,
    premium_progress_bar_enabled: false,
    preferred_locale: 'en-US',
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    public_updates_channel_id: null,
    safety_alerts_channel_id: null,
    vanity_url_code: null,
    application_id: null,
    features: [],
    roles: guild.roles,
    emojis: [],
    stickers: [],
    channels: guild.channels,
    threads: [],
    members: [makeMember(bot)],
    member_count: 2,
    large: false,
    unavailable: false,
    joined_at: new Date(0).toISOString(),
    presences: [],
    voice_states: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
    max_members: 500_000,
  };
}

export interface InteractionActor {
  user?: APIUser;
  /** Role ids of the member. */
  roles?: string[];
  /** The member's permissions in the channel, as Discord computes them. */
  permissions?: bigint;
}

export interface InteractionContext {
  applicationId: string;
  guild: FakeGuild;
  channel: APITextChannel;
  attachmentSizeLimit?: number;
}

function interactionMember(actor: InteractionActor): APIInteractionGuildMember {
  const user = actor.user ?? makeUser();
  return {
    ...makeMember(user, actor.roles ?? []),
    user,
    permissions: (actor.permissions ?? MEMBER_PERMISSIONS).toString(),
  } as APIInteractionGuildMember;
}

function interactionBase(ctx: InteractionContext, actor: InteractionActor) {
  return {
    id: snowflake(),
    application_id: ctx.applicationId,
    token: `aW50ZXJhY3Rpb246${randomBytes(96).toString('base64url')}`,
    version: 1 as const,
    guild_id: ctx.guild.id,
    guild: { id: ctx.guild.id, features: [], locale: 'en-US' },
    channel: ctx.channel,
    channel_id: ctx.channel.id,
    member: interactionMember(actor),
    app_permissions: BOT_PERMISSIONS.toString(),
    locale: 'en-US',
    guild_locale: 'en-US',
    entitlements: [],
    authorizing_integration_owners: { '0': ctx.guild.id },
    context: InteractionContextType.Guild,
    attachment_size_limit: ctx.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_LIMIT,
  };
}

/** Typed option values of a slash command, as Discord sends them. */
export const option = {
  string: (name: string, value: string): APIApplicationCommandInteractionDataOption => ({
    name,
    type: ApplicationCommandOptionType.String,
    value,
  }),
  integer: (name: string, value: number): APIApplicationCommandInteractionDataOption => ({
    name,
    type: ApplicationCommandOptionType.Integer,
    value,
  }),
  number: (name: string, value: number): APIApplicationCommandInteractionDataOption => ({
    name,
    type: ApplicationCommandOptionType.Number,
    value,
  }),
  boolean: (name: string, value: boolean): APIApplicationCommandInteractionDataOption => ({
    name,
    type: ApplicationCommandOptionType.Boolean,
    value,
  }),
  /** `attachment.id` must also be in the command's `attachments`. */
  attachment: (name: string, attachment: APIAttachment): APIApplicationCommandInteractionDataOption => ({
    name,
    type: ApplicationCommandOptionType.Attachment,
    value: attachment.id,
  }),
};

export interface SlashCommandSpec extends InteractionActor {
  name: string;
  options?: APIApplicationCommandInteractionDataOption[];
  /** Attachments the `attachment` options refer to (their ids are the option values). */
  attachments?: APIAttachment[];
  commandId?: string;
}

export function makeSlashCommand(
  ctx: InteractionContext,
  spec: SlashCommandSpec,
): APIChatInputApplicationCommandInteraction {
  const attachments = spec.attachments ?? [];
  return {
    ...interactionBase(ctx, spec),
    type: InteractionType.ApplicationCommand,
    data: {
      id: spec.commandId ?? snowflake(),
      name: spec.name,
      type: ApplicationCommandType.ChatInput,
      guild_id: ctx.guild.id,
      ...(spec.options ? { options: spec.options } : {}),
      ...(attachments.length
        ? { resolved: { attachments: Object.fromEntries(attachments.map((a) => [a.id, a])) } }
        : {}),
    },
  } as APIChatInputApplicationCommandInteraction;
}

export interface ButtonSpec extends InteractionActor {
  customId: string;
  /** The message the button sits on. */
  message: APIMessage;
}

export function makeButtonPress(
  ctx: InteractionContext,
  spec: ButtonSpec,
): APIMessageComponentButtonInteraction {
  return {
    ...interactionBase(ctx, spec),
    type: InteractionType.MessageComponent,
    message: spec.message,
    data: { custom_id: spec.customId, component_type: ComponentType.Button },
  } as APIMessageComponentButtonInteraction;
}
