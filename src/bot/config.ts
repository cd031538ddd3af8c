// The bot's settings, from the environment. Every problem is collected and reported at once, each
// with where to find the right value; the token's value never appears in a message.
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UserError } from '../errors.ts';
import type { BackendName } from '../model/backend.ts';
import { redactUrl } from '../store/keyv.ts';
import { KEEP_PHOTOS_ENV, photoRetentionMs, photoRetentionProblem } from '../store/toonify-photos.ts';
import { plural } from '../text.ts';
import { contestScheduleProblem, DEFAULT_CONTEST_SCHEDULE } from './contest-schedule.ts';

export interface DiscordCredentials {
  token: string;
  applicationId: string;
  /** Guild that gets the commands at once during development. */
  devGuildId?: string;
}

export interface BotConfig extends DiscordCredentials {
  dataDir: string;
  backend: BackendName;
  /** redis:// URL of the BullMQ queue; absent: the embedded queue. */
  queueUrl?: string;
  /** Roles whose members may use admin commands (/finetune) besides members with Manage Server. */
  adminRoleIds: string[];
  /** Cron schedule (UTC) of the contest announcements; absent: no contest. */
  contestSchedule?: string;
  /** How long /toonify photos are kept after their job (FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS); absent: 0. */
  toonifyPhotoRetentionMs?: number;
  /** Fewest usable faces a /finetune dataset needs (FACESTYLE_MIN_DATASET_IMAGES); absent: 50. */
  minDatasetImages?: number;
}

/** Every configuration problem found, one line each. */
export class ConfigError extends UserError {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(
      `the bot's configuration has ${plural(problems.length, 'problem')}:\n${problems
        .map((p) => `  - ${p}`)
        .join('\n')}`,
      'set these environment variables (or put them in the service file) and start again',
    );
  }
}

type Env = Record<string, string | undefined>;

const SNOWFLAKE = /^\d{17,20}$/;
// Bot tokens are three base64url parts: the bot's user id, a timestamp and an HMAC.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{18,40}\.[A-Za-z0-9_-]{4,10}\.[A-Za-z0-9_-]{20,60}$/;
// Exhaustive at compile time: a backend added to BackendName fails here until it is listed. Kept
// apart from src/model/backend.ts so that reading the configuration does not load TensorFlow.js.
const BACKENDS: Record<BackendName, true> = {
  auto: true,
  webgpu: true,
  wasm: true,
  cpu: true,
  tensorflow: true,
};

function tokenProblem(raw: string | undefined): string | undefined {
  const where = 'copy it from the Discord Developer Portal: your application > Bot > Reset Token';
  if (!raw?.trim()) return `DISCORD_TOKEN is not set; ${where}`;
  const token = raw.trim();
  if (/^(Bot|Bearer)\s/i.test(token))
    return 'DISCORD_TOKEN starts with "Bot "; set the token alone, without the prefix';
  if (!TOKEN_SHAPE.test(token)) {
    return `DISCORD_TOKEN does not look like a bot token (three dot-separated parts, about 70 characters; the client secret and the public key are not tokens); ${where}`;
  }
  const botId = Buffer.from(token.split('.')[0], 'base64url').toString('utf8');
  if (!SNOWFLAKE.test(botId))
    return `DISCORD_TOKEN's first part is not a bot id, so it is not a bot token; ${where}`;
  return undefined;
}

function snowflakeProblem(
  name: string,
  raw: string | undefined,
  what: string,
  required: boolean,
): string | undefined {
  if (!raw?.trim()) return required ? `${name} is not set; ${what}` : undefined;
  if (!SNOWFLAKE.test(raw.trim()))
    return `${name} must be a numeric Discord id (17 to 20 digits), got "${raw.trim()}"; ${what}`;
  return undefined;
}

function dataDirProblem(dir: string): string | undefined {
  try {
    if (statSync(dir, { throwIfNoEntry: false })?.isFile())
      return `FACESTYLE_DATA_DIR "${dir}" is a file, not a folder`;
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    return undefined;
  } catch (err) {
    return `FACESTYLE_DATA_DIR "${dir}" cannot be created or written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); point it at a writable folder`;
  }
}

function queueUrlProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `FACESTYLE_QUEUE_URL is not a URL ("${redactUrl(raw)}"); use redis://host:6379, or leave it empty for the embedded queue`;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    return `FACESTYLE_QUEUE_URL must start with redis:// or rediss://, got "${url.protocol}//"; leave it empty for the embedded queue`;
  }
  return undefined;
}

/** Parses a comma-separated list of role ids; names instead of ids are the usual mistake. */
function parseRoleIds(raw: string | undefined, problems: string[]): string[] {
  const entries = (raw ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const bad = entries.filter((entry) => !SNOWFLAKE.test(entry));
  if (bad.length) {
    problems.push(
      `FACESTYLE_ADMIN_ROLES must be role ids separated by commas, not names; not ids: ${bad
        .map((b) => `"${b}"`)
        .join(
          ', ',
        )} (Discord: User Settings > Advanced > Developer Mode, then right-click the role > Copy Role ID)`,
    );
  }
  return entries.filter((entry) => SNOWFLAKE.test(entry));
}

const APP_ID_HELP = 'Developer Portal: your application > General Information > Application ID';
const GUILD_HELP = 'the id of your test server (Developer Mode, right-click the server > Copy Server ID)';

function credentialProblems(env: Env): string[] {
  return [
    tokenProblem(env.DISCORD_TOKEN),
    snowflakeProblem('DISCORD_APPLICATION_ID', env.DISCORD_APPLICATION_ID, APP_ID_HELP, true),
    snowflakeProblem('DISCORD_DEV_GUILD_ID', env.DISCORD_DEV_GUILD_ID, GUILD_HELP, false),
  ].filter((p): p is string => p !== undefined);
}

function credentials(env: Env): DiscordCredentials {
  return {
    token: env.DISCORD_TOKEN!.trim(),
    applicationId: env.DISCORD_APPLICATION_ID!.trim(),
    devGuildId: env.DISCORD_DEV_GUILD_ID?.trim() || undefined,
  };
}

/** What `facestyle register` needs: the token, the application id and the optional dev guild. */
export function loadDiscordCredentials(env: Env = process.env): DiscordCredentials {
  const problems = credentialProblems(env);
  if (problems.length) throw new ConfigError(problems);
  return credentials(env);
}

/** The whole bot configuration; throws a `ConfigError` that lists every problem. */
export function loadBotConfig(env: Env = process.env): BotConfig {
  const problems = credentialProblems(env);
  const dataDir = resolve(env.FACESTYLE_DATA_DIR?.trim() || 'data');
  const dirProblem = dataDirProblem(dataDir);
  if (dirProblem) problems.push(dirProblem);
  const backend = (env.FACESTYLE_BACKEND?.trim() || 'auto') as BackendName;
  if (!Object.hasOwn(BACKENDS, backend)) {
    problems.push(`FACESTYLE_BACKEND must be one of ${Object.keys(BACKENDS).join(', ')}, got "${backend}"`);
  }
  const queueUrl = env.FACESTYLE_QUEUE_URL?.trim() || undefined;
  const queueProblem = queueUrl ? queueUrlProblem(queueUrl) : undefined;
  if (queueProblem) problems.push(queueProblem);
  const adminRoleIds = parseRoleIds(env.FACESTYLE_ADMIN_ROLES, problems);
  const contestCron = env.FACESTYLE_CONTEST_CRON?.trim() || DEFAULT_CONTEST_SCHEDULE;
  const contestOff = contestCron.toLowerCase() === 'off';
  const contestProblem = contestOff ? undefined : contestScheduleProblem(contestCron);
  if (contestProblem) problems.push(contestProblem);
  const contestSchedule = contestOff ? undefined : contestCron;
  const retentionProblem = photoRetentionProblem(env[KEEP_PHOTOS_ENV]);
  if (retentionProblem) problems.push(retentionProblem);
  const minDatasetImages = env.FACESTYLE_MIN_DATASET_IMAGES?.trim() || undefined;
  if (minDatasetImages !== undefined && !/^[1-9]\d*$/.test(minDatasetImages)) {
    problems.push(
      `FACESTYLE_MIN_DATASET_IMAGES must be a whole number of at least 1, got "${minDatasetImages}"`,
    );
  }
  if (problems.length) throw new ConfigError(problems);
  const toonifyPhotoRetentionMs = photoRetentionMs(env);
  return {
    ...credentials(env),
    dataDir,
    backend,
    queueUrl,
    adminRoleIds,
    contestSchedule,
    ...(toonifyPhotoRetentionMs ? { toonifyPhotoRetentionMs } : {}),
    ...(minDatasetImages ? { minDatasetImages: Number(minDatasetImages) } : {}),
  };
}
