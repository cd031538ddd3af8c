// Messages as Discord stores them: creating and editing from a JSON body plus uploaded files,
// with Discord's limits on content, embeds, components and attachments checked the way Discord
// checks them, so a bot that breaks a limit fails here as it would in production.
import type { APIAttachment, APIEmbed, APIMessage, APIUser } from 'discord.js';
import { snowflake } from './snowflake.ts';

export interface UploadedFile {
  /** Multipart field name, e.g. files[0]. */
  field: string;
  filename: string;
  contentType: string;
  size: number;
  bytes: Buffer;
}

/** A 400 with Discord's error body: thrown by validation, answered by the server. */
export class DiscordHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
    readonly errors?: Record<string, unknown>,
  ) {
    super(message);
  }

  body(): Record<string, unknown> {
    return { message: this.message, code: this.code, ...(this.errors ? { errors: this.errors } : {}) };
  }
}

const LIMITS = {
  content: 2000,
  embeds: 10,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footer: 2048,
  authorName: 256,
  embedTotal: 6000,
  rows: 5,
  rowComponents: 5,
  customId: 100,
  buttonLabel: 80,
  attachments: 10,
};

export const MessageFlag = { Ephemeral: 1 << 6, Loading: 1 << 7 } as const;

function formError(path: string, message: string): DiscordHttpError {
  return new DiscordHttpError(400, 50035, 'Invalid Form Body', {
    [path]: { _errors: [{ code: 'BASE_TYPE_INVALID', message }] },
  });
}

function checkLength(value: unknown, max: number, path: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'string') throw formError(path, 'Must be a string.');
  if (value.length > max) throw formError(path, `Must be ${max} or fewer in length.`);
  return value.length;
}

function checkEmbeds(embeds: APIEmbed[]): void {
  if (embeds.length > LIMITS.embeds)
    throw formError('embeds', `Must be ${LIMITS.embeds} or fewer in length.`);
  let total = 0;
  embeds.forEach((embed, i) => {
    total += checkLength(embed.title, LIMITS.embedTitle, `embeds.${i}.title`);
    total += checkLength(embed.description, LIMITS.embedDescription, `embeds.${i}.description`);
    total += checkLength(embed.footer?.text, LIMITS.footer, `embeds.${i}.footer.text`);
    total += checkLength(embed.author?.name, LIMITS.authorName, `embeds.${i}.author.name`);
    const fields = embed.fields ?? [];
    if (fields.length > LIMITS.embedFields) throw formError(`embeds.${i}.fields`, 'Too many fields.');
    fields.forEach((field, j) => {
      if (!field.name || !field.value) throw formError(`embeds.${i}.fields.${j}`, 'This field is required');
      total += checkLength(field.name, LIMITS.fieldName, `embeds.${i}.fields.${j}.name`);
      total += checkLength(field.value, LIMITS.fieldValue, `embeds.${i}.fields.${j}.value`);
    });
  });
  if (total > LIMITS.embedTotal) throw formError('embeds', 'Embed size exceeds maximum size of 6000');
}

interface RawComponent {
  type: number;
  custom_id?: string;
  label?: string;
  style?: number;
  url?: string;
  components?: RawComponent[];
}

function checkComponents(rows: RawComponent[]): void {
  if (rows.length > LIMITS.rows) throw formError('components', `Must be ${LIMITS.rows} or fewer in length.`);
  const seen = new Set<string>();
  rows.forEach((row, i) => {
    if (row.type !== 1) throw formError(`components.${i}.type`, 'Top-level components must be action rows.');
    const children = row.components ?? [];
    if (children.length === 0 || children.length > LIMITS.rowComponents) {
      throw formError(
        `components.${i}.components`,
        `Must be between 1 and ${LIMITS.rowComponents} in length.`,
      );
    }
    children.forEach((child, j) => {
      const path = `components.${i}.components.${j}`;
      checkLength(child.label, LIMITS.buttonLabel, `${path}.label`);
      // Link buttons (style 5) carry a URL instead of a custom id.
      if (child.style === 5) return;
      const id = child.custom_id;
      if (typeof id !== 'string' || id.length < 1 || id.length > LIMITS.customId) {
        throw formError(`${path}.custom_id`, `Must be between 1 and ${LIMITS.customId} in length.`);
      }
      if (seen.has(id)) throw formError(`${path}.custom_id`, 'Component custom id cannot be duplicated');
      seen.add(id);
    });
  });
}

/** Width and height from a PNG header, as Discord reports them for images. */
export function pngSize(bytes: Buffer): { width: number; height: number } | undefined {
  const signature = '89504e470d0a1a0a';
  if (bytes.length < 24 || bytes.subarray(0, 8).toString('hex') !== signature) return undefined;
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

export interface StoredAttachment {
  attachment: APIAttachment;
  bytes: Buffer;
  /** The CDN answers 404 once this passes (ms since epoch), like a signed URL that expired. */
  expiresAt: number;
  revoked: boolean;
}

/** Hands out CDN URLs for uploaded files and keeps their bytes. */
export interface AttachmentHost {
  host(file: { filename: string; contentType: string; bytes: Buffer }, channelId: string): APIAttachment;
}

export interface MessageBody {
  content?: string;
  embeds?: APIEmbed[];
  components?: RawComponent[];
  flags?: number;
  attachments?: Array<{ id: string | number; filename?: string; description?: string }>;
}

export interface MessageOrigin {
  channelId: string;
  guildId?: string;
  author: APIUser;
  applicationId?: string;
  /** Set for messages made through an interaction's webhook. */
  webhookId?: string;
  /** Message type: 0 default, 20 chat input command reply, 19 reply. */
  type?: number;
}

function resolveAttachmentRefs(embeds: APIEmbed[], attachments: APIAttachment[]): APIEmbed[] {
  return embeds.map((embed) => {
    const ref = embed.image?.url;
    if (!ref?.startsWith('attachment://')) return { type: 'rich', ...embed } as APIEmbed;
    const file = attachments.find((a) => a.filename === ref.slice('attachment://'.length));
    if (!file) {
      // Discord drops an image whose attachment:// target is missing rather than failing.
      const { image: _dropped, ...rest } = embed;
      return { type: 'rich', ...rest } as APIEmbed;
    }
    return {
      type: 'rich',
      ...embed,
      image: {
        url: file.url,
        proxy_url: file.proxy_url,
        width: file.width ?? undefined,
        height: file.height ?? undefined,
      },
    } as APIEmbed;
  });
}

/**
 * The attachments a create or edit ends with. `attachments` in the body lists what to keep: ids of
 * existing attachments, and indexes of the uploaded `files[n]`. Without it an edit keeps what was
 * there and adds the uploads.
 */
function nextAttachments(
  body: MessageBody,
  files: UploadedFile[],
  previous: APIAttachment[],
  channelId: string,
  host: AttachmentHost,
): APIAttachment[] {
  const uploadedByIndex = new Map<string, UploadedFile>();
  files.forEach((file, index) => {
    const match = /^files\[(\d+)\]$/.exec(file.field);
    uploadedByIndex.set(match ? match[1] : String(index), file);
  });
  const hostUpload = (file: UploadedFile, description?: string): APIAttachment => {
    const hosted = host.host(file, channelId);
    return description ? { ...hosted, description } : hosted;
  };
  if (!body.attachments) return [...previous, ...files.map((file) => hostUpload(file))];
  const out: APIAttachment[] = [];
  for (const entry of body.attachments) {
    const id = String(entry.id);
    const upload = uploadedByIndex.get(id);
    if (upload) {
      out.push(hostUpload(upload, entry.description));
      uploadedByIndex.delete(id);
      continue;
    }
    const kept = previous.find((a) => a.id === id);
    if (!kept) throw formError('attachments', `Unknown attachment id ${id}`);
    out.push(kept);
  }
  // Uploads the list does not mention are still attached (Discord's behaviour).
  for (const file of uploadedByIndex.values()) out.push(hostUpload(file));
  return out;
}

/** Builds a new message from a create request. */
export function createMessage(
  origin: MessageOrigin,
  body: MessageBody,
  files: UploadedFile[],
  host: AttachmentHost,
  options: { allowEmpty?: boolean; extraFlags?: number } = {},
): APIMessage {
  const message: APIMessage = {
    id: snowflake(),
    channel_id: origin.channelId,
    author: origin.author,
    content: '',
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: [],
    pinned: false,
    type: origin.type ?? 0,
    flags: ((body.flags ?? 0) & MessageFlag.Ephemeral) | (options.extraFlags ?? 0),
    components: [],
    ...(origin.webhookId ? { webhook_id: origin.webhookId } : {}),
    ...(origin.applicationId ? { application_id: origin.applicationId } : {}),
  };
  if (origin.guildId) (message as APIMessage & { guild_id?: string }).guild_id = origin.guildId;
  applyBody(message, body, files, host, { isCreate: true, allowEmpty: options.allowEmpty });
  return message;
}

/** Applies an edit to `message` in place; returns it. */
export function editMessage(
  message: APIMessage,
  body: MessageBody,
  files: UploadedFile[],
  host: AttachmentHost,
): APIMessage {
  applyBody(message, body, files, host, { isCreate: false });
  // The first edit of a deferred reply is its real content: it stops "thinking".
  message.flags = (message.flags ?? 0) & ~MessageFlag.Loading;
  message.edited_timestamp = new Date().toISOString();
  return message;
}

function applyBody(
  message: APIMessage,
  body: MessageBody,
  files: UploadedFile[],
  host: AttachmentHost,
  mode: { isCreate: boolean; allowEmpty?: boolean },
): void {
  if (body.content !== undefined && body.content !== null) {
    checkLength(body.content, LIMITS.content, 'content');
  }
  if (body.embeds) checkEmbeds(body.embeds);
  if (body.components) checkComponents(body.components);
  const attachments = nextAttachments(body, files, message.attachments, message.channel_id, host);
  if (attachments.length > LIMITS.attachments) throw formError('attachments', 'Too many attachments.');
  const content = body.content ?? message.content;
  const embeds = body.embeds ?? message.embeds;
  const components = body.components ?? message.components ?? [];
  if (
    !mode.allowEmpty &&
    !content &&
    embeds.length === 0 &&
    attachments.length === 0 &&
    components.length === 0
  ) {
    throw new DiscordHttpError(400, 50006, 'Cannot send an empty message');
  }
  message.content = content ?? '';
  message.attachments = attachments;
  message.embeds = resolveAttachmentRefs(embeds, attachments);
  message.components = components as APIMessage['components'];
}
