// `npm run bench -- bot`: a burst of /generate interactions from many members against the real
// bot (discord.js client, embedded queue, a forked worker running a tiny model) on the local fake
// Discord. Per interaction: time to the acknowledgement and to the final answer (the result, or the
// quota refusal), both as the fake Discord received them; and whether every acknowledgement made
// Discord's 3 s (the fake refuses a late one with 10062, as Discord does).
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { APIEmbed } from 'discord.js';
import type { FacestyleBot } from '../bot/client.ts';
import { positiveInt } from '../cli/options.ts';
import type { LocalJobQueue } from '../jobs/create.ts';
import type { BackendName } from '../model/backend.ts';
import { machineDescription, markdownTable, today } from './common.ts';

/** The parity fixture's 32x32 generator: fast enough that the bot, not the model, is measured. */
export const TINY_MODEL = fileURLToPath(
  new URL('../../test/fixtures/sg2_tiny/model.safetensors', import.meta.url),
);
const ACK_DEADLINE_MS = 3_000;

export interface BotBurstOptions {
  interactions: number;
  users: number;
  /** Tensor backend of the worker process. */
  backend: BackendName;
  /** Checkpoint the worker generates with (installed as the only model). */
  model?: string;
  /** Give up on answers after this long. */
  timeoutMs?: number;
  /** A redis:// URL: the bot queues through BullMQ (its keys removed afterwards); else embedded. */
  queueUrl?: string;
}

export type BurstOutcome = 'answered' | 'refused' | 'queue-full' | 'failed' | 'unanswered';

export interface InteractionTiming {
  id: string;
  userId: string;
  /** Dispatch to the accepted callback, as the fake Discord measured it. */
  ackMs?: number;
  /** Callbacks the fake refused for coming after the deadline. */
  lateCallbacks: number;
  /** Dispatch to the final answer: the result edit, or the refusal's follow-up. */
  finalMs?: number;
  outcome: BurstOutcome;
  /** The refusal or failure the member saw. */
  message?: string;
}

export interface BotBurstResult {
  timings: InteractionTiming[];
  backend: string;
  /** First dispatch to the last final answer. */
  wallMs: number;
  /** REST calls besides the callbacks in that time: discord.js keeps all of them to 50 a second. */
  restCalls: number;
}

const QUOTA_REFUSAL = /^(Please wait \d+ s before|You already have \d+|You reached today's limit)/;
const QUEUE_FULL = /^The queue is full/;

interface Recorded {
  method: string;
  route: string;
  params: Record<string, string>;
  body: unknown;
  status: number;
  at: number;
}

function isResult(body: unknown): boolean {
  const rows = (body as { components?: Array<{ components?: Array<{ custom_id?: string }> }> })?.components;
  return !!rows?.some((row) => row.components?.some((c) => c.custom_id?.startsWith('vote:')));
}

function firstEmbed(body: unknown): APIEmbed | undefined {
  return (body as { embeds?: APIEmbed[] })?.embeds?.[0];
}

/** The final answer of an interaction, found among the requests the fake recorded for its token. */
function finalAnswer(
  requests: Recorded[],
): { at: number; outcome: BurstOutcome; message?: string } | undefined {
  for (const request of requests) {
    if (request.status !== 200) continue;
    if (request.method === 'POST' && request.route === '/webhooks/:applicationId/:token') {
      const title = firstEmbed(request.body)?.title ?? '';
      const outcome = QUOTA_REFUSAL.test(title)
        ? 'refused'
        : QUEUE_FULL.test(title)
          ? 'queue-full'
          : 'failed';
      return { at: request.at, outcome, message: title };
    }
    if (
      request.method === 'PATCH' &&
      request.route === '/webhooks/:applicationId/:token/messages/:messageId'
    ) {
      if (isResult(request.body)) return { at: request.at, outcome: 'answered' };
      const title = firstEmbed(request.body)?.title ?? '';
      if (/^(❌|🛑)/u.test(title)) return { at: request.at, outcome: 'failed', message: title };
    }
  }
  return undefined;
}

/**
 * Sends `interactions` /generate commands at once, from `users` members in turn, to a bot running
 * on the real queue and worker, and waits for every final answer. The worker is started and warmed
 * (one job) before the burst, so the numbers are those of a running bot, not of its start.
 */
export async function measureBotBurst(options: BotBurstOptions): Promise<BotBurstResult> {
  // The fake Discord is test support: loaded only here, so the bot itself never depends on it.
  const [
    { FakeDiscord, makeUser },
    { FacestyleBot: Bot },
    { VoteStore },
    { RegistryModelCatalog },
    { QueuedDatasetIntake },
    { ModelRegistry },
    { jobConfigFromEnv },
    { createJobQueue },
  ] = await Promise.all([
    import('../../test/support/fake-discord/index.ts'),
    import('../bot/client.ts'),
    import('../store/votes.ts'),
    import('../bot/catalog.ts'),
    import('../bot/datasets.ts'),
    import('../pipelines/registry.ts'),
    import('../jobs/config.ts'),
    import('../jobs/create.ts'),
  ]);
  const dataDir = await mkdtemp(join(tmpdir(), 'facestyle-bench-bot-'));
  const modelsDir = join(dataDir, 'models');
  await mkdir(modelsDir, { recursive: true });
  await copyFile(options.model ?? TINY_MODEL, join(modelsDir, 'bench.safetensors'));
  const prefix = `facestyle-bench-bot-${process.pid}-${Date.now().toString(36)}`;
  const env = {
    FACESTYLE_DATA_DIR: dataDir,
    FACESTYLE_BACKEND: options.backend,
    FACESTYLE_QUEUE_URL: options.queueUrl ?? '',
    FACESTYLE_QUEUE_PREFIX: prefix,
  };
  const fake = await FakeDiscord.start();
  const votes = VoteStore.open(join(dataDir, 'votes.sqlite'));
  let queue: LocalJobQueue | undefined;
  let bot: FacestyleBot | undefined;
  try {
    // The default per-user policy of src/jobs/policy.ts: refusals are part of what is measured.
    queue = await createJobQueue({
      config: jobConfigFromEnv(env),
      maintenance: false,
      workerEnv: { ...process.env, ...env },
    });
    await queue.whenWorkersReady(300_000);
    const models = new RegistryModelCatalog(new ModelRegistry([modelsDir]), join(dataDir, 'runs'));
    const model = await models.defaultModel();
    if (!model) throw new Error(`no model found in ${modelsDir}`);
    const warm = await queue.submit({
      kind: 'generate',
      payload: { checkpoint: model, seeds: [0, 1, 2, 3], psi: 0.7, grid: true },
      actor: { userId: 'bench-warmup', isAdmin: true },
    });
    const warmed = await queue.waitFor(warm.id, { timeoutMs: 300_000 });
    if (warmed.status !== 'completed')
      throw new Error(`warm-up job ${warmed.status}: ${warmed.failure?.message}`);

    bot = new Bot({
      config: {
        token: fake.token,
        applicationId: fake.applicationId,
        dataDir,
        backend: options.backend,
        adminRoleIds: [],
      },
      services: {
        jobs: queue,
        models,
        datasets: new QueuedDatasetIntake(queue, join(dataDir, 'datasets')),
        votes,
      },
      clientOptions: { rest: fake.restOptions() },
    });
    await bot.start();

    const users = Array.from({ length: options.users }, (_, i) => makeUser({ username: `member${i}` }));
    // Members take turns, so each one's commands are spread over the whole burst.
    const raws = Array.from({ length: options.interactions }, (_, i) =>
      fake.slashCommand({ name: 'generate', user: users[i % users.length] }),
    );
    const requestsBefore = fake.requests.length;
    for (const raw of raws) fake.sendInteraction(raw);

    const deadline = Date.now() + (options.timeoutMs ?? 600_000);
    let answers = new Map<string, ReturnType<typeof finalAnswer>>();
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const byToken = new Map<string, Recorded[]>();
      for (const request of fake.requests) {
        const token = request.params.token;
        if (token) byToken.set(token, [...(byToken.get(token) ?? []), request]);
      }
      answers = new Map(raws.map((raw) => [raw.id, finalAnswer(byToken.get(raw.token) ?? [])]));
      if ([...answers.values()].every(Boolean)) break;
    }
    const timings = raws.map((raw): InteractionTiming => {
      const record = fake.interactions.get(raw.id)!;
      const answer = answers.get(raw.id);
      return {
        id: raw.id,
        userId: raw.member!.user.id,
        ackMs: record.ack?.latencyMs,
        lateCallbacks: record.lateCallbacks,
        finalMs: answer ? answer.at - record.dispatchedAt : undefined,
        outcome: answer?.outcome ?? 'unanswered',
        message: answer?.message,
      };
    });
    const first = Math.min(...raws.map((raw) => fake.interactions.get(raw.id)!.dispatchedAt));
    const last = Math.max(
      ...timings.map((t, i) => (t.finalMs ?? 0) + fake.interactions.get(raws[i].id)!.dispatchedAt),
    );
    const restCalls = fake.requests
      .slice(requestsBefore)
      .filter((r) => r.at <= last && r.route !== '/interactions/:interactionId/:token/callback').length;
    return { timings, backend: options.backend, wallMs: last - first, restCalls };
  } finally {
    await bot?.stop();
    await queue?.close();
    if (options.queueUrl) {
      const { removeQueueKeys } = await import('../jobs/bullmq/cleanup.ts');
      await removeQueueKeys(options.queueUrl, prefix);
    }
    votes.close();
    await fake.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function spread(values: number[]): string {
  if (!values.length) return '-';
  const ms = (v: number) => Math.round(v);
  return `${ms(percentile(values, 50))} / ${ms(percentile(values, 99))} / ${ms(Math.max(...values))}`;
}

/** Markdown rows and the 3 s check of a burst. */
export function formatBurst(result: BotBurstResult, options: BotBurstOptions): string {
  const t = result.timings;
  const count = (outcome: BurstOutcome) => t.filter((x) => x.outcome === outcome).length;
  const acks = t.filter((x) => x.ackMs !== undefined).map((x) => x.ackMs!);
  const late = t.filter((x) => x.ackMs === undefined || x.ackMs > ACK_DEADLINE_MS || x.lateCallbacks > 0);
  const final = (outcome: BurstOutcome) => t.filter((x) => x.outcome === outcome).map((x) => x.finalMs!);
  const table = markdownTable(
    ['measure', 'p50 / p99 / max ms', 'n'],
    [
      ['acknowledgement (all)', spread(acks), acks.length],
      ['final answer: result posted', spread(final('answered')), count('answered')],
      ['final answer: quota refusal', spread(final('refused')), count('refused')],
    ],
  );
  const lines = [
    `\n### /generate burst (${today()}, ${machineDescription()}; ${options.queueUrl ? 'BullMQ' : 'embedded'} queue, worker backend ${result.backend})\n`,
    `${options.interactions} interactions from ${options.users} members at once; answered ${count('answered')}, refused by per-user quotas ${count('refused')}, queue full ${count('queue-full')}, failed ${count('failed')}, unanswered ${count('unanswered')}; ${(result.wallMs / 1000).toFixed(1)} s from the first dispatch to the last answer, with ${result.restCalls} REST calls besides the callbacks.\n`,
    table,
    '',
    late.length === 0
      ? `every interaction acknowledged within ${ACK_DEADLINE_MS / 1000} s: yes (max ${Math.round(Math.max(...acks))} ms, no late callbacks)`
      : `every interaction acknowledged within ${ACK_DEADLINE_MS / 1000} s: NO, ${late.length} missed it`,
  ];
  return `${lines.join('\n')}\n`;
}

export function register(bench: Command): void {
  bench
    .command('bot')
    .description(
      'a /generate burst from many members against the real bot, queue and worker on a fake Discord',
    )
    .option('--interactions <n>', 'interactions in the burst', '200')
    .option('--users <n>', 'members sending them, in turn', '50')
    .option('--model <path>', 'checkpoint the worker generates with (default: the 32x32 test fixture)')
    .option('--queue-url <url>', 'redis:// URL: queue through BullMQ instead of the embedded queue')
    .action(
      async (
        opts: { interactions: string; users: string; model?: string; queueUrl?: string },
        cmd: Command,
      ) => {
        const options: BotBurstOptions = {
          interactions: positiveInt('--interactions', opts.interactions),
          users: positiveInt('--users', opts.users),
          // wasm: the fastest backend for a tiny model on CPUs; --backend picks another.
          backend: (cmd.optsWithGlobals().backend ?? process.env.FACESTYLE_BACKEND ?? 'wasm') as BackendName,
          model: opts.model,
          queueUrl: opts.queueUrl,
        };
        const result = await measureBotBurst(options);
        process.stdout.write(formatBurst(result, options));
        const late = result.timings.filter((t) => t.ackMs === undefined || t.ackMs > ACK_DEADLINE_MS);
        if (late.length) process.exitCode = 1;
      },
    );
}
