// The fake Discord itself, driven by the real discord.js client: it must hold discord.js to
// Discord's rules, or the bot tests that rely on it would prove nothing.
import {
  ButtonStyle,
  type ChatInputCommandInteraction,
  Client,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  REST,
  Routes,
} from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeDiscord, type FakeDiscordOptions } from '../support/fake-discord/index.ts';

let fake: FakeDiscord | undefined;
let client: Client | undefined;

afterEach(async () => {
  await client?.destroy();
  await fake?.close();
  client = undefined;
  fake = undefined;
});

/** A logged-in client whose interactions go to `handler`; resolves with each handler's outcome. */
async function connect(
  options: FakeDiscordOptions,
  handler: (interaction: ChatInputCommandInteraction) => Promise<unknown>,
): Promise<{ fake: FakeDiscord; results: Map<string, unknown> }> {
  fake = await FakeDiscord.start(options);
  client = new Client({ intents: [GatewayIntentBits.Guilds], rest: fake.restOptions() });
  const results = new Map<string, unknown>();
  client.on(Events.InteractionCreate, async (interaction) => {
    if (!interaction.isChatInputCommand()) return;
    try {
      results.set(interaction.id, await handler(interaction));
    } catch (err) {
      results.set(interaction.id, err);
    }
  });
  const ready = new Promise((resolve) => client!.once(Events.ClientReady, resolve));
  await client.login(fake.token);
  await ready;
  return { fake, results };
}

function resultOf(results: Map<string, unknown>, id: string): Promise<unknown> {
  return fake!
    .waitFor(`the handler of ${id}`, () => (results.has(id) ? { value: results.get(id) } : undefined))
    .then((r) => r.value);
}

describe('fake Discord', () => {
  it('refuses an acknowledgement after the deadline with 10062 Unknown interaction', async () => {
    const { fake, results } = await connect({ ackDeadlineMs: 150 }, async (interaction) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return interaction.deferReply();
    });
    const record = fake.sendInteraction(fake.slashCommand({ name: 'slow' }));
    const error = await resultOf(results, record.raw.id);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect((error as DiscordAPIError).code).toBe(10062);
    expect(record.ack).toBeUndefined();
    expect(record.lateCallbacks).toBe(1);
  });

  it('refuses a second acknowledgement with 40060', async () => {
    const { fake, results } = await connect({}, async (interaction) => {
      await interaction.deferReply();
      // discord.js guards its own state; a second client acting on the same interaction does not.
      return new REST({ api: fake.apiUrl }).post(
        Routes.interactionCallback(interaction.id, interaction.token),
        {
          body: { type: 5 },
          auth: false,
        },
      );
    });
    const record = fake.sendInteraction(fake.slashCommand({ name: 'twice' }));
    const error = await resultOf(results, record.raw.id);
    expect((error as DiscordAPIError).code).toBe(40060);
    expect(record.ack?.type).toBe(5);
  });

  it('expires interaction tokens: edits after the lifetime get 401 with 50027', async () => {
    const { fake, results } = await connect({ interactionTokenTtlMs: 200 }, async (interaction) => {
      await interaction.deferReply();
      await interaction.editReply('in time');
      await new Promise((resolve) => setTimeout(resolve, 300));
      return interaction.editReply('too late');
    });
    const record = fake.sendInteraction(fake.slashCommand({ name: 'slowjob' }));
    const error = await resultOf(results, record.raw.id);
    expect((error as DiscordAPIError).status).toBe(401);
    expect((error as DiscordAPIError).code).toBe(50027);
    expect(fake.originalMessage(record.raw.id)?.content).toBe('in time');
  });

  it('refuses uploads over the attachment limit with 413 / 40005 and keeps smaller ones byte for byte', async () => {
    const limit = 1024;
    const { fake, results } = await connect({ attachmentSizeLimit: limit }, async (interaction) => {
      await interaction.deferReply();
      const small = await interaction.editReply({
        files: [{ attachment: Buffer.alloc(limit, 7), name: 'ok.bin' }],
      });
      try {
        await interaction.followUp({ files: [{ attachment: Buffer.alloc(limit + 1, 7), name: 'big.bin' }] });
      } catch (err) {
        return { small, err };
      }
      return { small };
    });
    const record = fake.sendInteraction(fake.slashCommand({ name: 'upload' }));
    const { err } = (await resultOf(results, record.raw.id)) as { err?: DiscordAPIError };
    expect(err?.status).toBe(413);
    expect(err?.code).toBe(40005);
    const attachment = fake.originalMessage(record.raw.id)!.attachments[0];
    expect(fake.attachmentBytes(attachment.id)).toEqual(Buffer.alloc(limit, 7));
    const download = await fetch(attachment.url);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(Buffer.alloc(limit, 7));
  });

  it("checks Discord's message rules: custom ids of at most 100 characters, unique in a message", async () => {
    // Raw JSON: discord.js's builders would refuse these before they reach the API.
    const button = (customId: string) => ({
      type: 2,
      style: ButtonStyle.Primary,
      label: 'press',
      custom_id: customId,
    });
    const { fake, results } = await connect({}, async (interaction) => {
      await interaction.deferReply();
      const codes: unknown[] = [];
      for (const components of [[button('x'.repeat(101))], [button('same'), button('same')]]) {
        await interaction
          .editReply({ content: 'buttons', components: [{ type: 1, components }] } as never)
          .catch((err) => {
            codes.push((err as DiscordAPIError).code);
          });
      }
      return codes;
    });
    const record = fake.sendInteraction(fake.slashCommand({ name: 'components' }));
    expect(await resultOf(results, record.raw.id)).toEqual([50035, 50035]);
  });

  it('lets the client resume after a dropped connection and replays what it missed', async () => {
    const { fake, results } = await connect({}, async (interaction) => interaction.reply('hello'));
    fake.gateway.dropConnections();
    // Sent while the client is disconnected: it must arrive through RESUME.
    const record = fake.sendInteraction(fake.slashCommand({ name: 'during-outage' }));
    await resultOf(results, record.raw.id);
    expect(fake.gateway.resumes).toBe(1);
    expect(fake.gateway.identifies).toBe(1);
    expect(fake.originalMessage(record.raw.id)?.content).toBe('hello');
  });

  it('answers an expired CDN link with 404', async () => {
    fake = await FakeDiscord.start();
    const attachment = fake.uploadAttachment({ filename: 'faces.zip', bytes: Buffer.from('PK\u0003\u0004') });
    expect((await fetch(attachment.url)).status).toBe(200);
    fake.expireAttachment(attachment.id);
    expect((await fetch(attachment.url)).status).toBe(404);
  });

  it('refuses a wrong bot token at the gateway and on bot routes', async () => {
    fake = await FakeDiscord.start();
    client = new Client({ intents: [], rest: fake.restOptions() });
    await expect(client.login(`${fake.token.slice(0, -4)}abcd`)).rejects.toThrow(/invalid token/i);
    expect(fake.requestsTo('/gateway/bot')[0]).toMatchObject({ auth: 'invalid', status: 401 });
    expect(fake.gateway.identifies).toBe(0);
  });
});
