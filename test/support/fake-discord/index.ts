// A local Discord for end-to-end tests of the bot with the real discord.js client: the REST API v10,
// the gateway and the attachment CDN on one 127.0.0.1 port. It keeps Discord's rules that bots get
// wrong (3 s to acknowledge an interaction, 15 min interaction tokens, 10 MiB uploads, message and
// command limits) and records every request for assertions.
//
//   const fake = await FakeDiscord.start();
//   const client = new Client({ intents: [], rest: fake.restOptions() });   // gateway URL comes from GET /gateway/bot
//   await client.login(fake.token);
//   await fake.sendInteraction(fake.slashCommand({ name: 'help' }));
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  APIApplicationCommand,
  APIAttachment,
  APIChatInputApplicationCommandInteraction,
  APIInteraction,
  APIMessage,
  APIMessageComponentButtonInteraction,
  APITextChannel,
  APIUser,
} from 'discord.js';
import { overwriteCommands } from './commands.ts';
import { FakeGateway } from './gateway.ts';
import {
  createMessage,
  DiscordHttpError,
  editMessage,
  type MessageBody,
  MessageFlag,
  pngSize,
  type StoredAttachment,
  type UploadedFile,
} from './messages.ts';
import {
  type ButtonSpec,
  DEFAULT_ATTACHMENT_LIMIT,
  type FakeGuild,
  type FakeGuildSpec,
  guildCreatePayload,
  type InteractionContext,
  makeButtonPress,
  makeGuild,
  makeSlashCommand,
  makeUser,
  type SlashCommandSpec,
} from './payloads.ts';
import { snowflake } from './snowflake.ts';

export { MessageFlag, type UploadedFile } from './messages.ts';
export { watchOutboundConnections } from './network-guard.ts';
export * from './payloads.ts';

export interface FakeDiscordOptions {
  /** Bot token the fake accepts; a realistic random one by default. */
  token?: string;
  applicationId?: string;
  botName?: string;
  /** Guilds the bot is in; one guild with a #general channel by default. */
  guilds?: FakeGuildSpec[];
  /** Time to acknowledge an interaction (Discord: 3 s). */
  ackDeadlineMs?: number;
  /** Lifetime of an interaction token (Discord: 15 min). */
  interactionTokenTtlMs?: number;
  /** Upload limit for bot messages and the default `attachment_size_limit` of interactions. */
  attachmentSizeLimit?: number;
  /** Lifetime of signed attachment URLs on the CDN (Discord: about a day). */
  attachmentUrlTtlMs?: number;
  heartbeatIntervalMs?: number;
}

/** One change to a stored message, for tests that follow what members saw over time. */
export interface MessageEvent {
  at: number;
  op: 'create' | 'edit' | 'delete';
  /** The message right after the change (before it, for a delete). */
  message: APIMessage;
}

export interface RecordedRequest {
  method: string;
  /** Route pattern, e.g. /webhooks/:applicationId/:token/messages/:messageId; the path for unknown routes. */
  route: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, string>;
  /** How the request authenticated: with the bot token, without any, or with a wrong one. */
  auth: 'bot' | 'none' | 'invalid';
  /** JSON body, or payload_json of a multipart body. */
  body: unknown;
  files: UploadedFile[];
  status: number;
  /** Discord error code of a refused request. */
  errorCode?: number;
  at: number;
}

export interface InteractionRecord {
  raw: APIInteraction;
  dispatchedAt: number;
  /** The accepted callback (type 4, 5, 6, 7, 8, 9) and how long after the dispatch it came. */
  ack?: { type: number; at: number; latencyMs: number; data?: unknown };
  /** Callbacks refused for arriving after the deadline. */
  lateCallbacks: number;
  /** The message `@original` names: the reply, or for components the message the button is on. */
  originalMessageId?: string;
  followUpIds: string[];
}

type Params = Record<string, string>;

interface RestRequest {
  params: Params;
  query: URLSearchParams;
  body: unknown;
  files: UploadedFile[];
}

interface RestReply {
  status: number;
  body?: unknown;
}

interface Route {
  method: string;
  pattern: string;
  /** Bot routes need `Authorization: Bot <token>`; interaction routes authenticate by their token. */
  auth: 'bot' | 'none';
  handle(request: RestRequest): RestReply | Promise<RestReply>;
  regex: RegExp;
  keys: string[];
}

const API_PREFIX = '/api/v10';
const MAX_BODY_BYTES = 200 * 1024 * 1024;

function compile(pattern: string): { regex: RegExp; keys: string[] } {
  const keys: string[] = [];
  const source = pattern.replace(/:(\w+)/g, (_m, key: string) => {
    keys.push(key);
    return '([^/]+)';
  });
  return { regex: new RegExp(`^${source}$`), keys };
}

function realisticToken(applicationId: string): string {
  return [
    Buffer.from(applicationId).toString('base64url'),
    randomBytes(5).toString('base64url').slice(0, 6),
    randomBytes(29).toString('base64url').slice(0, 38),
  ].join('.');
}

function ok(body?: unknown): RestReply {
  return body === undefined ? { status: 204 } : { status: 200, body };
}

const errors = {
  unknownInteraction: () => new DiscordHttpError(404, 10062, 'Unknown interaction'),
  alreadyAcknowledged: () => new DiscordHttpError(400, 40060, 'Interaction has already been acknowledged.'),
  invalidWebhookToken: () => new DiscordHttpError(401, 50027, 'Invalid Webhook Token'),
  unknownMessage: () => new DiscordHttpError(404, 10008, 'Unknown Message'),
  unknownChannel: () => new DiscordHttpError(404, 10003, 'Unknown Channel'),
  unknownWebhook: () => new DiscordHttpError(404, 10015, 'Unknown Webhook'),
  tooLarge: () => new DiscordHttpError(413, 40005, 'Request entity too large'),
  unauthorized: () => new DiscordHttpError(401, 0, '401: Unauthorized'),
  notFound: () => new DiscordHttpError(404, 0, '404: Not Found'),
};

export class FakeDiscord {
  readonly token: string;
  readonly applicationId: string;
  readonly botUser: APIUser;
  readonly guilds: FakeGuild[];
  readonly requests: RecordedRequest[] = [];
  /** Requests to routes the fake does not know: a client calling these needs the fake extended. */
  readonly unknownRoutes: RecordedRequest[] = [];
  readonly interactions = new Map<string, InteractionRecord>();
  /** CDN downloads: path and status. */
  readonly cdnRequests: Array<{ path: string; status: number }> = [];
  readonly messages = new Map<string, APIMessage>();
  /** Every create, edit and delete of a message, with a copy of it as it was then, in order. */
  readonly messageHistory: MessageEvent[] = [];
  readonly globalCommands: APIApplicationCommand[] = [];
  readonly guildCommands = new Map<string, APIApplicationCommand[]>();
  readonly gateway: FakeGateway;
  readonly options: Required<Omit<FakeDiscordOptions, 'token' | 'applicationId' | 'botName' | 'guilds'>>;
  private readonly attachments = new Map<string, StoredAttachment>();
  private readonly routes: Route[] = [];
  private readonly listeners = new Set<() => void>();
  private port = 0;

  private constructor(
    private readonly server: Server,
    options: FakeDiscordOptions,
  ) {
    this.applicationId = options.applicationId ?? snowflake();
    this.token = options.token ?? realisticToken(this.applicationId);
    this.botUser = makeUser({ id: this.applicationId, username: options.botName ?? 'facestyle', bot: true });
    this.guilds = (options.guilds ?? [{}]).map((spec) => makeGuild(spec));
    this.options = {
      ackDeadlineMs: options.ackDeadlineMs ?? 3_000,
      interactionTokenTtlMs: options.interactionTokenTtlMs ?? 15 * 60_000,
      attachmentSizeLimit: options.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_LIMIT,
      attachmentUrlTtlMs: options.attachmentUrlTtlMs ?? 24 * 3_600_000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 41_250,
    };
    this.gateway = new FakeGateway({
      token: this.token,
      resumeUrl: () => this.gatewayUrl,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      readyPayload: () => ({
        user: { ...this.botUser, verified: true, mfa_enabled: false, flags: 0 },
        guilds: this.guilds.map((g) => ({ id: g.id, unavailable: true })),
        application: { id: this.applicationId, flags: 0 },
        private_channels: [],
        relationships: [],
        user_settings: {},
        presences: [],
        guild_join_requests: [],
        geo_ordered_rtc_regions: [],
      }),
      guildCreates: () => this.guilds.map((g) => guildCreatePayload(g, this.botUser)),
    });
    this.defineRoutes();
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const server = createServer();
    const fake = new FakeDiscord(server, options);
    server.on('request', (req, res) => void fake.onRequest(req, res));
    server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://127.0.0.1').pathname === '/gateway')
        fake.gateway.handleUpgrade(req, socket, head);
      else socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.port = (server.address() as AddressInfo).port;
    return fake;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `rest.api` for discord.js / @discordjs/rest: the client appends /v10. */
  get apiUrl(): string {
    return `${this.origin}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this.port}/gateway`;
  }

  get cdnUrl(): string {
    return `${this.origin}/cdn`;
  }

  /** The `rest` client options that point discord.js here (the gateway URL follows from GET /gateway/bot). */
  restOptions(): { api: string; cdn: string } {
    return { api: this.apiUrl, cdn: this.cdnUrl };
  }

  get guild(): FakeGuild {
    return this.guilds[0];
  }

  get channel(): APITextChannel {
    return this.guilds[0].channels[0];
  }

  async close(): Promise<void> {
    await this.gateway.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- interactions -------------------------------------------------------------------------

  private context(guild = this.guild, channel = guild.channels[0]): InteractionContext {
    return {
      applicationId: this.applicationId,
      guild,
      channel,
      attachmentSizeLimit: this.options.attachmentSizeLimit,
    };
  }

  slashCommand(spec: SlashCommandSpec): APIChatInputApplicationCommandInteraction {
    const registered = [...this.globalCommands, ...(this.guildCommands.get(this.guild.id) ?? [])].find(
      (c) => c.name === spec.name,
    );
    return makeSlashCommand(this.context(), { commandId: registered?.id, ...spec });
  }

  buttonPress(spec: ButtonSpec): APIMessageComponentButtonInteraction {
    return makeButtonPress(this.context(), spec);
  }

  /** Sends INTERACTION_CREATE to the bot's gateway session(s). */
  sendInteraction(raw: APIInteraction): InteractionRecord {
    const record: InteractionRecord = { raw, dispatchedAt: Date.now(), lateCallbacks: 0, followUpIds: [] };
    if ('message' in raw && raw.message) {
      record.originalMessageId = raw.message.id;
      if (!this.messages.has(raw.message.id)) this.messages.set(raw.message.id, raw.message);
    }
    this.interactions.set(raw.id, record);
    const sessions = this.gateway.dispatch('INTERACTION_CREATE', raw);
    if (sessions === 0)
      throw new Error('no gateway session to send the interaction to: log the client in first');
    return record;
  }

  /** Resolves once the interaction got its callback; rejects after `timeoutMs`. */
  waitForAck(id: string, timeoutMs = 5_000): Promise<NonNullable<InteractionRecord['ack']>> {
    return this.waitFor(`the callback of interaction ${id}`, () => this.interactions.get(id)?.ack, timeoutMs);
  }

  /** The message an interaction's `@original` currently names. */
  originalMessage(id: string): APIMessage | undefined {
    const messageId = this.interactions.get(id)?.originalMessageId;
    return messageId ? this.messages.get(messageId) : undefined;
  }

  /** Requests, optionally only those of a route pattern and method. */
  requestsTo(route: string, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.route === route && (!method || r.method === method));
  }

  /**
   * Polls `check` whenever the fake records something (and every 50 ms) until it returns a value.
   */
  waitFor<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 15_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const tick = () => {
        let value: T | undefined | null | false;
        try {
          value = check();
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (value !== undefined && value !== null && value !== false) {
          finish();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(tick, 50);
      const finish = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.listeners.delete(tick);
      };
      this.listeners.add(tick);
      tick();
    });
  }

  // ---- CDN ----------------------------------------------------------------------------------

  /** Puts a file on the CDN as if a member uploaded it (e.g. a dataset for an attachment option). */
  uploadAttachment(
    file: { filename: string; bytes: Buffer; contentType?: string },
    channelId = this.channel.id,
  ): APIAttachment {
    return this.hostFile(
      {
        filename: file.filename,
        bytes: file.bytes,
        contentType: file.contentType ?? 'application/octet-stream',
      },
      channelId,
    );
  }

  /** Makes an attachment's URL answer 404, as a signed CDN URL does once it expired. */
  expireAttachment(id: string): void {
    const stored = this.attachments.get(id);
    if (!stored) throw new Error(`no attachment ${id}`);
    stored.revoked = true;
  }

  /** The bytes of an attachment the bot uploaded. */
  attachmentBytes(id: string): Buffer | undefined {
    return this.attachments.get(id)?.bytes;
  }

  private hostFile(
    file: { filename: string; contentType: string; bytes: Buffer },
    channelId: string,
  ): APIAttachment {
    const id = snowflake();
    const expiresAt = Date.now() + this.options.attachmentUrlTtlMs;
    const query = `ex=${Math.floor(expiresAt / 1000).toString(16)}&is=${Math.floor(Date.now() / 1000).toString(16)}&hm=${randomBytes(32).toString('hex')}`;
    const url = `${this.cdnUrl}/attachments/${channelId}/${id}/${encodeURIComponent(file.filename)}?${query}`;
    const size = pngSize(file.bytes);
    const attachment: APIAttachment = {
      id,
      filename: file.filename,
      size: file.bytes.length,
      url,
      proxy_url: url,
      content_type: file.contentType,
      ...(size ? { width: size.width, height: size.height } : {}),
    };
    this.attachments.set(id, { attachment, bytes: file.bytes, expiresAt, revoked: false });
    return attachment;
  }

  private serveCdn(path: string, res: ServerResponse): void {
    const match = /^\/cdn\/attachments\/[^/]+\/([^/]+)\/[^/]+$/.exec(path);
    const stored = match ? this.attachments.get(match[1]) : undefined;
    const available = stored && !stored.revoked && Date.now() <= stored.expiresAt;
    this.cdnRequests.push({ path, status: available ? 200 : 404 });
    if (!stored || !available) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('This content is no longer available.');
      return;
    }
    res.writeHead(200, {
      'content-type': stored.attachment.content_type ?? 'application/octet-stream',
      'content-length': stored.bytes.length,
    });
    res.end(stored.bytes);
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    if (req.method === 'GET' && url.pathname.startsWith('/cdn/')) return this.serveCdn(url.pathname, res);
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      route: url.pathname,
      path: url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : url.pathname,
      params: {},
      query: Object.fromEntries(url.searchParams),
      auth: this.authOf(req),
      body: undefined,
      files: [],
      status: 0,
      at: Date.now(),
    };
    let reply: RestReply;
    try {
      reply = await this.route(req, url, record);
    } catch (err) {
      if (!(err instanceof DiscordHttpError)) {
        reply = { status: 500, body: { message: `fake Discord failed: ${(err as Error).message}`, code: 0 } };
      } else {
        reply = { status: err.status, body: err.body() };
        record.errorCode = err.code;
      }
    }
    record.status = reply.status;
    this.requests.push(record);
    if (reply.status === 204) res.writeHead(204).end();
    else
      res
        .writeHead(reply.status, { 'content-type': 'application/json' })
        .end(JSON.stringify(reply.body ?? {}));
    for (const listener of [...this.listeners]) listener();
  }

  private authOf(req: IncomingMessage): RecordedRequest['auth'] {
    const header = req.headers.authorization;
    if (!header) return 'none';
    return header === `Bot ${this.token}` ? 'bot' : 'invalid';
  }

  private async route(req: IncomingMessage, url: URL, record: RecordedRequest): Promise<RestReply> {
    if (!url.pathname.startsWith(API_PREFIX)) {
      this.unknownRoutes.push(record);
      throw errors.notFound();
    }
    const path = record.path;
    const route = this.routes.find((r) => r.method === record.method && r.regex.test(path));
    if (!route) {
      this.unknownRoutes.push(record);
      throw errors.notFound();
    }
    record.route = route.pattern;
    const match = route.regex.exec(path)!;
    record.params = Object.fromEntries(route.keys.map((key, i) => [key, decodeURIComponent(match[i + 1])]));
    const { body, files } = await this.readBody(req);
    record.body = body;
    record.files = files;
    if (route.auth === 'bot' && record.auth !== 'bot') throw errors.unauthorized();
    return route.handle({ params: record.params, query: url.searchParams, body, files });
  }

  private async readBody(req: IncomingMessage): Promise<{ body: unknown; files: UploadedFile[] }> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw errors.tooLarge();
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks);
    const type = req.headers['content-type'] ?? '';
    if (raw.length === 0) return { body: undefined, files: [] };
    if (type.startsWith('application/json')) return { body: JSON.parse(raw.toString('utf8')), files: [] };
    if (!type.startsWith('multipart/form-data')) return { body: raw.toString('utf8'), files: [] };
    const form = await new Response(raw, { headers: { 'content-type': type } }).formData();
    let body: unknown;
    const files: UploadedFile[] = [];
    for (const [field, value] of form) {
      if (typeof value === 'string') {
        if (field === 'payload_json') body = JSON.parse(value);
        continue;
      }
      const bytes = Buffer.from(await value.arrayBuffer());
      files.push({ field, filename: value.name, contentType: value.type, size: bytes.length, bytes });
    }
    return { body, files };
  }

  private on(method: string, pattern: string, auth: Route['auth'], handle: Route['handle']): void {
    this.routes.push({ method, pattern, auth, handle, ...compile(pattern) });
  }

  // ---- REST routes --------------------------------------------------------------------------

  private defineRoutes(): void {
    this.on('GET', '/gateway/bot', 'bot', () =>
      ok({
        url: this.gatewayUrl,
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 86_400_000, max_concurrency: 1 },
      }),
    );
    this.on('GET', '/gateway', 'none', () => ok({ url: this.gatewayUrl }));
    this.on('GET', '/users/@me', 'bot', () =>
      ok({ ...this.botUser, verified: true, mfa_enabled: false, flags: 0 }),
    );
    this.on('GET', '/applications/@me', 'bot', () => ok(this.applicationObject()));

    this.on('GET', '/applications/:applicationId/commands', 'bot', ({ params }) => {
      this.assertApplication(params.applicationId);
      return ok(this.globalCommands);
    });
    this.on('PUT', '/applications/:applicationId/commands', 'bot', ({ params, body }) => {
      this.assertApplication(params.applicationId);
      const next = overwriteCommands(body, this.globalCommands, this.applicationId);
      this.globalCommands.splice(0, this.globalCommands.length, ...next);
      return ok(next);
    });
    this.on('GET', '/applications/:applicationId/guilds/:guildId/commands', 'bot', ({ params }) => {
      this.assertApplication(params.applicationId);
      return ok(this.guildCommands.get(this.guildById(params.guildId).id) ?? []);
    });
    this.on('PUT', '/applications/:applicationId/guilds/:guildId/commands', 'bot', ({ params, body }) => {
      this.assertApplication(params.applicationId);
      const guild = this.guildById(params.guildId);
      const next = overwriteCommands(
        body,
        this.guildCommands.get(guild.id) ?? [],
        this.applicationId,
        guild.id,
      );
      this.guildCommands.set(guild.id, next);
      return ok(next);
    });

    this.on('POST', '/interactions/:interactionId/:token/callback', 'none', (request) =>
      this.callback(request),
    );

    const webhookMessage = '/webhooks/:applicationId/:token/messages/:messageId';
    this.on('GET', webhookMessage, 'none', ({ params }) => ok(this.webhookTarget(params)));
    this.on('PATCH', webhookMessage, 'none', ({ params, body, files }) => {
      const interaction = this.interactionByToken(params);
      this.checkUploads(files, this.interactionUploadLimit(interaction));
      return ok(
        this.recorded(
          'edit',
          editMessage(this.webhookTarget(params), (body ?? {}) as MessageBody, files, this.host()),
        ),
      );
    });
    this.on('DELETE', webhookMessage, 'none', ({ params }) => {
      const message = this.webhookTarget(params);
      this.messages.delete(message.id);
      this.recorded('delete', message);
      return ok();
    });
    this.on('POST', '/webhooks/:applicationId/:token', 'none', ({ params, body, files, query }) => {
      const interaction = this.interactionByToken(params);
      if (!interaction.ack) throw errors.unknownWebhook();
      this.checkUploads(files, this.interactionUploadLimit(interaction));
      const message = this.create(
        interaction.raw.channel?.id ?? this.channel.id,
        (body ?? {}) as MessageBody,
        files,
        { webhookId: this.applicationId, type: 0 },
      );
      interaction.followUpIds.push(message.id);
      return query.get('wait') === 'true' ? ok(message) : ok();
    });

    this.on('GET', '/channels/:channelId', 'bot', ({ params }) => ok(this.channelById(params.channelId)));
    this.on('GET', '/channels/:channelId/messages', 'bot', ({ params, query }) => {
      const channel = this.channelById(params.channelId);
      const limit = Number(query.get('limit') ?? 50);
      const list = [...this.messages.values()].filter(
        (m) => m.channel_id === channel.id && !this.isEphemeral(m),
      );
      return ok(list.reverse().slice(0, limit));
    });
    this.on('POST', '/channels/:channelId/messages', 'bot', ({ params, body, files }) => {
      const channel = this.channelById(params.channelId);
      this.checkUploads(files, this.options.attachmentSizeLimit);
      const payload = (body ?? {}) as MessageBody;
      // Only interaction responses can be ephemeral.
      return ok(
        this.create(
          channel.id,
          { ...payload, flags: (payload.flags ?? 0) & ~MessageFlag.Ephemeral },
          files,
          {},
        ),
      );
    });
    this.on('GET', '/channels/:channelId/messages/:messageId', 'bot', ({ params }) =>
      ok(this.channelMessage(params.channelId, params.messageId)),
    );
    this.on('PATCH', '/channels/:channelId/messages/:messageId', 'bot', ({ params, body, files }) => {
      const message = this.channelMessage(params.channelId, params.messageId);
      // A bot edits its own messages only.
      if (message.author.id !== this.botUser.id)
        throw new DiscordHttpError(403, 50005, 'Cannot edit a message authored by another user');
      this.checkUploads(files, this.options.attachmentSizeLimit);
      return ok(this.recorded('edit', editMessage(message, (body ?? {}) as MessageBody, files, this.host())));
    });
    this.on('DELETE', '/channels/:channelId/messages/:messageId', 'bot', ({ params }) => {
      const message = this.channelMessage(params.channelId, params.messageId);
      this.messages.delete(message.id);
      this.recorded('delete', message);
      return ok();
    });
  }

  private applicationObject(): Record<string, unknown> {
    return {
      id: this.applicationId,
      name: this.botUser.username,
      icon: null,
      description: '',
      bot_public: true,
      bot_require_code_grant: false,
      verify_key: randomBytes(32).toString('hex'),
      flags: 0,
      team: null,
      owner: makeUser({ username: 'owner' }),
      bot: this.botUser,
      approximate_guild_count: this.guilds.length,
    };
  }

  private assertApplication(id: string): void {
    if (id !== this.applicationId) throw new DiscordHttpError(403, 50001, 'Missing Access');
  }

  private guildById(id: string): FakeGuild {
    const guild = this.guilds.find((g) => g.id === id);
    if (!guild) throw new DiscordHttpError(403, 50001, 'Missing Access');
    return guild;
  }

  private channelById(id: string): APITextChannel {
    for (const guild of this.guilds) {
      const channel = guild.channels.find((c) => c.id === id);
      if (channel) return channel;
    }
    throw errors.unknownChannel();
  }

  private channelMessage(channelId: string, messageId: string): APIMessage {
    const channel = this.channelById(channelId);
    const message = this.messages.get(messageId);
    if (!message || message.channel_id !== channel.id || this.isEphemeral(message))
      throw errors.unknownMessage();
    return message;
  }

  private isEphemeral(message: APIMessage): boolean {
    return ((message.flags ?? 0) & MessageFlag.Ephemeral) !== 0;
  }

  private host() {
    return {
      host: (file: { filename: string; contentType: string; bytes: Buffer }, channelId: string) =>
        this.hostFile(file, channelId),
    };
  }

  private create(
    channelId: string,
    body: MessageBody,
    files: UploadedFile[],
    origin: { webhookId?: string; type?: number; extraFlags?: number; allowEmpty?: boolean },
  ): APIMessage {
    const guild = this.guilds.find((g) => g.channels.some((c) => c.id === channelId));
    const message = createMessage(
      {
        channelId,
        guildId: guild?.id,
        author: this.botUser,
        applicationId: this.applicationId,
        webhookId: origin.webhookId,
        type: origin.type,
      },
      body,
      files,
      this.host(),
      { allowEmpty: origin.allowEmpty, extraFlags: origin.extraFlags },
    );
    this.messages.set(message.id, message);
    return this.recorded('create', message);
  }

  private recorded(op: MessageEvent['op'], message: APIMessage): APIMessage {
    this.messageHistory.push({ at: Date.now(), op, message: structuredClone(message) });
    return message;
  }

  private checkUploads(files: UploadedFile[], limit: number): void {
    if (files.some((file) => file.size > limit)) throw errors.tooLarge();
  }

  private interactionUploadLimit(interaction: InteractionRecord): number {
    return (
      (interaction.raw as { attachment_size_limit?: number }).attachment_size_limit ??
      this.options.attachmentSizeLimit
    );
  }

  /** The interaction a webhook route's token belongs to; 401 once the token expired. */
  private interactionByToken(params: Params): InteractionRecord {
    if (params.applicationId !== this.applicationId) throw errors.unknownWebhook();
    const record = [...this.interactions.values()].find((r) => r.raw.token === params.token);
    if (!record) throw errors.invalidWebhookToken();
    if (Date.now() - record.dispatchedAt > this.options.interactionTokenTtlMs)
      throw errors.invalidWebhookToken();
    return record;
  }

  private webhookTarget(params: Params): APIMessage {
    const interaction = this.interactionByToken(params);
    const id = params.messageId === '@original' ? interaction.originalMessageId : params.messageId;
    if (!id) throw errors.unknownMessage();
    const owned = id === interaction.originalMessageId || interaction.followUpIds.includes(id);
    const message = owned ? this.messages.get(id) : undefined;
    if (!message) throw errors.unknownMessage();
    return message;
  }

  private callback({ params, body, files, query }: RestRequest): RestReply {
    const record = this.interactions.get(params.interactionId);
    if (!record || record.raw.token !== params.token) throw errors.unknownInteraction();
    const now = Date.now();
    if (now - record.dispatchedAt > this.options.ackDeadlineMs) {
      record.lateCallbacks++;
      throw errors.unknownInteraction();
    }
    if (record.ack) throw errors.alreadyAcknowledged();
    const { type, data } = (body ?? {}) as { type?: number; data?: MessageBody };
    const channelId = record.raw.channel?.id ?? this.channel.id;
    const isComponent = 'message' in record.raw && record.raw.message !== undefined;
    this.checkUploads(files, this.interactionUploadLimit(record));
    switch (type) {
      case 4: {
        const message = this.create(channelId, data ?? {}, files, {
          webhookId: this.applicationId,
          type: 20,
        });
        record.originalMessageId = message.id;
        break;
      }
      case 5: {
        const message = this.create(channelId, { flags: data?.flags }, [], {
          webhookId: this.applicationId,
          type: 20,
          extraFlags: MessageFlag.Loading,
          allowEmpty: true,
        });
        record.originalMessageId = message.id;
        break;
      }
      case 6:
      case 7: {
        if (!isComponent || !record.originalMessageId) {
          throw new DiscordHttpError(
            400,
            40004,
            'Interaction callback type is only valid for component interactions',
          );
        }
        if (type === 7) {
          const message = this.messages.get(record.originalMessageId);
          if (!message) throw errors.unknownMessage();
          this.recorded('edit', editMessage(message, data ?? {}, files, this.host()));
        }
        break;
      }
      case 8:
      case 9:
        break;
      default:
        throw new DiscordHttpError(400, 50035, 'Invalid Form Body', {
          type: { _errors: [{ code: 'BASE_TYPE_CHOICES', message: `invalid callback type ${type}` }] },
        });
    }
    record.ack = { type, at: now, latencyMs: now - record.dispatchedAt, data };
    if (query.get('with_response') !== 'true') return ok();
    const message = record.originalMessageId ? this.messages.get(record.originalMessageId) : undefined;
    return ok({
      interaction: {
        id: record.raw.id,
        type: record.raw.type,
        response_message_id: message?.id,
        response_message_loading: type === 5,
        response_message_ephemeral: message ? this.isEphemeral(message) : false,
      },
      resource: { type, ...(message && (type === 4 || type === 7) ? { message } : {}) },
    });
  }
}
