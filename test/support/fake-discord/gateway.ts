// The gateway half of the fake: Discord's v10 JSON gateway without compression. HELLO on connect,
// IDENTIFY -> READY (guilds unavailable) + one GUILD_CREATE per guild, heartbeats acknowledged,
// RESUME replays what a session missed, and tests push dispatches (INTERACTION_CREATE) into it.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { GatewayCloseCodes, GatewayOpcodes } from 'discord.js';
import { type WebSocket, WebSocketServer } from 'ws';

export interface GatewaySetup {
  token: string;
  /** URL a session resumes at (READY's resume_gateway_url). */
  resumeUrl(): string;
  heartbeatIntervalMs: number;
  /** READY's `d` minus the session fields. */
  readyPayload(): Record<string, unknown>;
  /** GUILD_CREATE payloads sent after READY, one per guild. */
  guildCreates(): Array<Record<string, unknown>>;
}

export interface GatewayConnectionRecord {
  /** Query of the connection URL: v, encoding, and compress if the client asked for it. */
  query: Record<string, string>;
  at: number;
}

export interface GatewayFrame {
  direction: 'in' | 'out';
  op: number;
  t?: string | null;
  s?: number | null;
  at: number;
}

interface Session {
  id: string;
  seq: number;
  /** Every dispatch of the session, kept for RESUME. */
  sent: Array<{ s: number; t: string; d: unknown }>;
  socket: WebSocket | null;
  /** Closed normally by the client: it cannot be resumed. */
  ended: boolean;
}

interface Payload {
  op: number;
  d?: unknown;
  s?: number | null;
  t?: string | null;
}

export class FakeGateway {
  readonly connections: GatewayConnectionRecord[] = [];
  readonly frames: GatewayFrame[] = [];
  identifies = 0;
  resumes = 0;
  heartbeats = 0;
  private readonly server = new WebSocketServer({ noServer: true });
  private readonly sessions = new Map<string, Session>();
  private readonly sessionOf = new Map<WebSocket, Session>();
  private readonly readyListeners: Array<() => void> = [];

  constructor(private readonly setup: GatewaySetup) {
    this.server.on('connection', (socket, request) => this.onConnection(socket, request));
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.server.handleUpgrade(request, socket, head, (ws) => this.server.emit('connection', ws, request));
  }

  /** Sessions that receive dispatches: identified and not ended by the client. */
  get liveSessions(): number {
    return [...this.sessions.values()].filter((s) => !s.ended).length;
  }

  /** Resolves once a session is READY (now, if one already is). */
  whenReady(): Promise<void> {
    if ([...this.sessions.values()].some((s) => !s.ended && s.socket)) return Promise.resolve();
    return new Promise((resolve) => this.readyListeners.push(resolve));
  }

  /**
   * Sends a dispatch to every live session; a session that is disconnected gets it on RESUME.
   * Returns how many sessions it went to.
   */
  dispatch(t: string, d: unknown): number {
    let count = 0;
    for (const session of this.sessions.values()) {
      if (session.ended) continue;
      this.dispatchTo(session, t, d);
      count++;
    }
    return count;
  }

  /** Cuts every connection with a close code the client resumes after (4000: unknown error). */
  dropConnections(code = GatewayCloseCodes.UnknownError): void {
    for (const session of this.sessions.values()) {
      session.socket?.close(code, 'fake gateway dropped the connection');
      session.socket = null;
    }
  }

  async close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: WebSocket, request: IncomingMessage): void {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    this.connections.push({ query: Object.fromEntries(url.searchParams), at: Date.now() });
    if (url.searchParams.get('encoding') !== 'json' || url.searchParams.has('compress')) {
      // The fake speaks plain JSON only; a client asking for more is misconfigured for these tests.
      socket.close(GatewayCloseCodes.DecodeError, 'the fake gateway supports encoding=json without compress');
      return;
    }
    socket.on('message', (data) => this.onMessage(socket, data.toString()));
    socket.on('close', (code) => this.onClose(socket, code));
    this.send(socket, {
      op: GatewayOpcodes.Hello,
      d: { heartbeat_interval: this.setup.heartbeatIntervalMs },
    });
  }

  private onClose(socket: WebSocket, code: number): void {
    const session = this.sessionOf.get(socket);
    this.sessionOf.delete(socket);
    if (!session || session.socket !== socket) return;
    session.socket = null;
    // Discord ends a session when the client closes with 1000/1001; other codes leave it resumable.
    if (code === 1000 || code === 1001) session.ended = true;
  }

  private onMessage(socket: WebSocket, text: string): void {
    let payload: Payload;
    try {
      payload = JSON.parse(text) as Payload;
    } catch {
      socket.close(GatewayCloseCodes.DecodeError, 'payload is not JSON');
      return;
    }
    this.frames.push({ direction: 'in', op: payload.op, at: Date.now() });
    switch (payload.op) {
      case GatewayOpcodes.Heartbeat:
        this.heartbeats++;
        this.send(socket, { op: GatewayOpcodes.HeartbeatAck });
        return;
      case GatewayOpcodes.Identify:
        this.identify(socket, payload.d as { token?: string });
        return;
      case GatewayOpcodes.Resume:
        this.resume(socket, payload.d as { token?: string; session_id?: string; seq?: number });
        return;
      case GatewayOpcodes.PresenceUpdate:
      case GatewayOpcodes.RequestGuildMembers:
        return;
      default:
        socket.close(GatewayCloseCodes.UnknownOpcode, `unknown opcode ${payload.op}`);
    }
  }

  private identify(socket: WebSocket, d: { token?: string }): void {
    if (this.sessionOf.has(socket)) {
      socket.close(GatewayCloseCodes.AlreadyAuthenticated, 'already authenticated');
      return;
    }
    if (d.token !== this.setup.token) {
      socket.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
      return;
    }
    this.identifies++;
    const session: Session = { id: randomBytes(16).toString('hex'), seq: 0, sent: [], socket, ended: false };
    this.sessions.set(session.id, session);
    this.sessionOf.set(socket, session);
    this.dispatchTo(session, 'READY', {
      v: 10,
      ...this.setup.readyPayload(),
      session_id: session.id,
      session_type: 'normal',
      resume_gateway_url: this.setup.resumeUrl(),
      shard: [0, 1],
    });
    for (const guild of this.setup.guildCreates()) this.dispatchTo(session, 'GUILD_CREATE', guild);
    for (const listener of this.readyListeners.splice(0)) listener();
  }

  private resume(socket: WebSocket, d: { token?: string; session_id?: string; seq?: number }): void {
    const session = d.session_id ? this.sessions.get(d.session_id) : undefined;
    if (d.token !== this.setup.token) {
      socket.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
      return;
    }
    if (!session || session.ended) {
      // d: false tells the client to identify anew.
      this.send(socket, { op: GatewayOpcodes.InvalidSession, d: false });
      return;
    }
    this.resumes++;
    session.socket = socket;
    this.sessionOf.set(socket, session);
    for (const event of session.sent) {
      if (event.s > (d.seq ?? 0)) this.send(socket, { op: GatewayOpcodes.Dispatch, ...event });
    }
    this.dispatchTo(session, 'RESUMED', null);
  }

  private dispatchTo(session: Session, t: string, d: unknown): void {
    session.seq++;
    const event = { s: session.seq, t, d };
    session.sent.push(event);
    if (session.socket) this.send(session.socket, { op: GatewayOpcodes.Dispatch, ...event });
  }

  private send(socket: WebSocket, payload: Payload): void {
    this.frames.push({ direction: 'out', op: payload.op, t: payload.t, s: payload.s, at: Date.now() });
    socket.send(JSON.stringify({ s: null, t: null, ...payload }));
  }
}
