// The bot's configuration: each missing or wrong value is named with where to find the right one,
// all problems at once, and the token's value is never repeated back.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadBotConfig, loadDiscordCredentials } from '../../src/bot/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'facestyle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOKEN = `${Buffer.from('1234567890123456789').toString('base64url')}.GhQx1a.${'s3cr3tPart_'.repeat(3)}abcde`;
const GOOD = {
  DISCORD_TOKEN: TOKEN,
  DISCORD_APPLICATION_ID: '1234567890123456789',
  FACESTYLE_DATA_DIR: join(dir, 'data'),
};

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadBotConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadBotConfig', () => {
  it('reads a good environment, with defaults for the optional values', () => {
    const config = loadBotConfig({
      ...GOOD,
      FACESTYLE_ADMIN_ROLES: ' 111111111111111111, 222222222222222222 ',
    });
    expect(config).toEqual({
      token: TOKEN,
      applicationId: GOOD.DISCORD_APPLICATION_ID,
      devGuildId: undefined,
      dataDir: GOOD.FACESTYLE_DATA_DIR,
      backend: 'auto',
      queueUrl: undefined,
      adminRoleIds: ['111111111111111111', '222222222222222222'],
      contestSchedule: '0 12 * * 1',
    });
  });

  it('takes a contest schedule, or "off", and names a wrong one', () => {
    expect(loadBotConfig({ ...GOOD, FACESTYLE_CONTEST_CRON: '30 18 * * 5' }).contestSchedule).toBe(
      '30 18 * * 5',
    );
    expect(loadBotConfig({ ...GOOD, FACESTYLE_CONTEST_CRON: 'off' }).contestSchedule).toBeUndefined();
    expect(problemsOf({ ...GOOD, FACESTYLE_CONTEST_CRON: 'mondays at noon' })).toEqual([
      expect.stringMatching(
        /^FACESTYLE_CONTEST_CRON "mondays at noon" is not a cron expression; e\.g\. "0 12/,
      ),
    ]);
    expect(problemsOf({ ...GOOD, FACESTYLE_CONTEST_CRON: '*/30 * * * * *' })[0]).toMatch(/seconds field/);
  });

  it('keeps /toonify photos for FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS, none by default', () => {
    expect(loadBotConfig(GOOD).toonifyPhotoRetentionMs).toBeUndefined();
    expect(loadBotConfig({ ...GOOD, FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS: '2' }).toonifyPhotoRetentionMs).toBe(
      2 * 3_600_000,
    );
    expect(problemsOf({ ...GOOD, FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS: 'a week' })).toEqual([
      expect.stringMatching(/^FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS must be a number of hours of at least 0/),
    ]);
  });

  it('takes the fewest faces a /finetune dataset needs from FACESTYLE_MIN_DATASET_IMAGES', () => {
    expect(loadBotConfig(GOOD).minDatasetImages).toBeUndefined();
    expect(loadBotConfig({ ...GOOD, FACESTYLE_MIN_DATASET_IMAGES: '200' }).minDatasetImages).toBe(200);
    for (const bad of ['0', '-3', 'many', '2.5']) {
      expect(problemsOf({ ...GOOD, FACESTYLE_MIN_DATASET_IMAGES: bad })).toEqual([
        `FACESTYLE_MIN_DATASET_IMAGES must be a whole number of at least 1, got "${bad}"`,
      ]);
    }
  });

  it('accepts a Redis queue URL and every backend name', () => {
    expect(
      loadBotConfig({ ...GOOD, FACESTYLE_QUEUE_URL: 'rediss://:pw@redis.example:6380/2' }).queueUrl,
    ).toBe('rediss://:pw@redis.example:6380/2');
    for (const backend of ['auto', 'webgpu', 'wasm', 'cpu', 'tensorflow']) {
      expect(loadBotConfig({ ...GOOD, FACESTYLE_BACKEND: backend }).backend).toBe(backend);
    }
  });

  it('names each missing required value with where to get it', () => {
    const problems = problemsOf({ FACESTYLE_DATA_DIR: GOOD.FACESTYLE_DATA_DIR });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^DISCORD_TOKEN is not set; .*Reset Token/);
    expect(problems[1]).toMatch(/^DISCORD_APPLICATION_ID is not set; .*Application ID/);
  });

  it('reports every wrong value at once', () => {
    const problems = problemsOf({
      ...GOOD,
      DISCORD_APPLICATION_ID: 'my-bot',
      DISCORD_DEV_GUILD_ID: '12',
      FACESTYLE_BACKEND: 'cuda',
      FACESTYLE_QUEUE_URL: 'http://localhost:6379',
      FACESTYLE_ADMIN_ROLES: 'Moderators,111111111111111111,Admins',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^DISCORD_APPLICATION_ID must be a numeric Discord id .* got "my-bot"/),
      expect.stringMatching(/^DISCORD_DEV_GUILD_ID must be a numeric Discord id .* got "12"/),
      'FACESTYLE_BACKEND must be one of auto, webgpu, wasm, cpu, tensorflow, got "cuda"',
      expect.stringMatching(
        /^FACESTYLE_QUEUE_URL must start with redis:\/\/ or rediss:\/\/, got "http:\/\/"/,
      ),
      expect.stringMatching(
        /^FACESTYLE_ADMIN_ROLES must be role ids .* not ids: "Moderators", "Admins" .*Copy Role ID/,
      ),
    ]);
  });

  it('says what is wrong with a token without repeating it', () => {
    const cases: Array<[string, RegExp]> = [
      [`Bot ${TOKEN}`, /starts with "Bot "/],
      ['0123456789abcdef0123456789abcdef', /does not look like a bot token.*client secret/],
      [
        `${Buffer.from('not-an-id').toString('base64url')}aaaaaaaaaaaa.GhQx1a.${'x'.repeat(38)}`,
        /first part is not a bot id/,
      ],
    ];
    for (const [token, message] of cases) {
      const [problem] = problemsOf({ ...GOOD, DISCORD_TOKEN: token });
      expect(problem).toMatch(message);
      expect(problem).not.toContain(token.replace(/^Bot /, ''));
    }
  });

  it('refuses a data folder that is a file, and hides a queue password in messages', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const problems = problemsOf({
      ...GOOD,
      FACESTYLE_DATA_DIR: file,
      FACESTYLE_QUEUE_URL: 'redis//:hunter2@host',
    });
    expect(problems[0]).toBe(`FACESTYLE_DATA_DIR "${file}" is a file, not a folder`);
    expect(problems[1]).toMatch(/^FACESTYLE_QUEUE_URL is not a URL/);
    expect(problems[1]).not.toContain('hunter2');
  });

  it('puts one line per problem in the error message, with a hint', () => {
    try {
      loadBotConfig({});
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).message).toMatch(
        /has 2 problems:\n {2}- DISCORD_TOKEN .*\n {2}- DISCORD_APPLICATION_ID/,
      );
      expect((err as ConfigError).hint).toBeTruthy();
    }
  });
});

describe('loadDiscordCredentials', () => {
  it('needs only the token and application id (no data folder), plus the optional dev guild', () => {
    expect(
      loadDiscordCredentials({
        DISCORD_TOKEN: TOKEN,
        DISCORD_APPLICATION_ID: GOOD.DISCORD_APPLICATION_ID,
        DISCORD_DEV_GUILD_ID: '987654321098765432',
        FACESTYLE_DATA_DIR: '/proc/not-writable',
      }),
    ).toEqual({ token: TOKEN, applicationId: GOOD.DISCORD_APPLICATION_ID, devGuildId: '987654321098765432' });
  });
});
