// A running bot against the fake Discord: the real discord.js client logged in over 127.0.0.1,
// in-memory services, and helpers to send an interaction and wait until the bot handled it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  APIActionRowComponent,
  APIButtonComponentWithCustomId,
  APIInteraction,
  APIMessage,
} from 'discord.js';
import sharp from 'sharp';
import { type BotTiming, FacestyleBot, type InteractionOutcome } from '../../../src/bot/client.ts';
import type { BotConfig } from '../../../src/bot/config.ts';
import type { BotServices, ModelSummary } from '../../../src/bot/services.ts';
import { type Logger, logger } from '../../../src/log.ts';
import { VoteStore } from '../../../src/store/votes.ts';
import {
  FakeDiscord,
  type FakeDiscordOptions,
  type InteractionRecord,
  MessageFlag,
} from '../../support/fake-discord/index.ts';
import { serverPathLeaks } from './member-text.ts';
import { MemoryCatalog, MemoryJobs, RecordingDatasets } from './memory-services.ts';

export const TEST_MODELS: ModelSummary[] = [
  { name: 'ffhq256', kind: 'base', resolution: 256, description: 'real faces' },
  { name: 'toons', kind: 'finetuned', resolution: 256, parent: 'ffhq256', snapshots: [10, 20], createdAt: 1 },
];

export const ADMIN_ROLE_ID = '111111111111111111';

export const FAST_TIMING: Partial<BotTiming> = {
  ackSafetyMs: 1_500,
  progressRefreshMs: 50,
  queuedGraceMs: 0,
};

export interface HarnessOptions {
  fake?: FakeDiscordOptions;
  timing?: Partial<BotTiming>;
  log?: Logger;
}

export class BotHarness {
  bot!: FacestyleBot;
  readonly outcomes: InteractionOutcome[] = [];

  private constructor(
    readonly fake: FakeDiscord,
    readonly dataDir: string,
    readonly services: BotServices & { jobs: MemoryJobs; models: MemoryCatalog; datasets: RecordingDatasets },
    readonly config: BotConfig,
    private readonly options: HarnessOptions,
  ) {}

  static async start(options: HarnessOptions = {}): Promise<BotHarness> {
    const fake = await FakeDiscord.start({
      guilds: [{ name: 'faces', roles: [{ id: ADMIN_ROLE_ID, name: 'facestyle admins' }] }],
      ...options.fake,
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'facestyle-bot-'));
    const services = {
      jobs: new MemoryJobs(),
      models: new MemoryCatalog(TEST_MODELS, dataDir),
      datasets: new RecordingDatasets(dataDir, await solidPng(96, 64, [90, 60, 200])),
      votes: VoteStore.open(join(dataDir, 'votes.sqlite')),
    };
    const config: BotConfig = {
      token: fake.token,
      applicationId: fake.applicationId,
      dataDir,
      backend: 'cpu',
      adminRoleIds: [ADMIN_ROLE_ID],
    };
    const harness = new BotHarness(fake, dataDir, services, config, options);
    await harness.startBot();
    return harness;
  }

  /** Starts a (new) bot process on the same services and fake Discord, as after a restart. */
  async startBot(): Promise<FacestyleBot> {
    this.bot = new FacestyleBot({
      config: this.config,
      services: this.services,
      clientOptions: { rest: this.fake.restOptions() },
      timing: { ...FAST_TIMING, ...this.options.timing },
      log: this.options.log ?? logger('bot-test'),
    });
    this.bot.onInteractionHandled((outcome) => this.outcomes.push(outcome));
    await this.bot.start();
    return this.bot;
  }

  /** Sends an interaction and resolves once the bot finished handling it. */
  async interact(
    raw: APIInteraction,
    timeoutMs = 5_000,
  ): Promise<{ record: InteractionRecord; outcome: InteractionOutcome }> {
    const record = this.fake.sendInteraction(raw);
    const outcome = await this.fake.waitFor(
      `the bot to handle ${raw.id}`,
      () => this.outcomes.find((o) => o.id === raw.id),
      timeoutMs,
    );
    return { record, outcome };
  }

  /**
   * Stops everything; throws (failing the suite's afterAll) when any message the suite made shows
   * a server path or the data folder's name.
   */
  async close(): Promise<void> {
    const leaks = serverPathLeaks(this.fake.messageHistory, this.dataDir);
    await this.bot.stop();
    this.services.votes.close();
    await this.fake.close();
    rmSync(this.dataDir, { recursive: true, force: true });
    if (leaks.length) throw new Error(`member-facing text shows server paths:\n${leaks.join('\n')}`);
  }
}

/** A small PNG with a solid colour, like a result grid the worker wrote. */
export async function solidPng(
  width: number,
  height: number,
  rgb: [number, number, number] = [200, 120, 60],
): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

/** A PNG of random pixels: it does not compress, so its size is about 3 bytes a pixel. */
export async function noisyPng(width: number, height: number): Promise<Buffer> {
  return sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** The buttons of a message, across its action rows. */
export function buttons(message: APIMessage | undefined): APIButtonComponentWithCustomId[] {
  return (message?.components ?? []).flatMap(
    (row) => (row as APIActionRowComponent<APIButtonComponentWithCustomId>).components,
  );
}

export function isEphemeral(message: APIMessage | undefined): boolean {
  return ((message?.flags ?? 0) & MessageFlag.Ephemeral) !== 0;
}
