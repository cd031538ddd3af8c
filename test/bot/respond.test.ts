// The Responder's ordering rules, against the fake Discord with a bare discord.js client: whatever
// comes first (the dispatcher's safety-net acknowledgement or the handler's answer), an interaction
// is acknowledged once and the answer lands where it should.
import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  Client,
  Events,
  type Interaction,
} from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Responder } from '../../src/bot/respond.ts';
import { FakeDiscord, MessageFlag } from '../support/fake-discord/index.ts';

let fake: FakeDiscord;
let client: Client;
let handle: (interaction: Interaction) => Promise<void>;
const done = new Map<string, unknown>();

beforeAll(async () => {
  fake = await FakeDiscord.start();
  client = new Client({ intents: [], rest: fake.restOptions() });
  client.on(Events.InteractionCreate, async (interaction) => {
    try {
      await handle(interaction);
      done.set(interaction.id, true);
    } catch (err) {
      done.set(interaction.id, err);
    }
  });
  const ready = new Promise((resolve) => client.once(Events.ClientReady, resolve));
  await client.login(fake.token);
  await ready;
});

afterAll(async () => {
  await client.destroy();
  await fake.close();
});

async function run(
  raw: Parameters<FakeDiscord['sendInteraction']>[0],
  handler: (i: Interaction) => Promise<void>,
) {
  handle = handler;
  const record = fake.sendInteraction(raw);
  const outcome = await fake.waitFor('the handler', () =>
    done.has(raw.id) ? { value: done.get(raw.id) } : undefined,
  );
  expect(outcome.value).toBe(true);
  return record;
}

describe('Responder', () => {
  it('acknowledges once when an acknowledgement and the answer are started together', async () => {
    const record = await run(fake.slashCommand({ name: 'race' }), async (interaction) => {
      const respond = new Responder(interaction as ChatInputCommandInteraction);
      await Promise.all([
        respond.defer('public'),
        respond.send({ content: 'answer' }),
        respond.defer('ephemeral'),
      ]);
    });
    expect(record.ack?.type).toBe(5);
    expect(fake.requests.filter((r) => r.errorCode === 40060)).toEqual([]);
    expect(fake.originalMessage(record.raw.id)).toMatchObject({ content: 'answer', flags: 0 });
  });

  it('moves a failure after a public defer into an ephemeral follow-up and removes the public reply', async () => {
    const record = await run(fake.slashCommand({ name: 'fails' }), async (interaction) => {
      const respond = new Responder(interaction as ChatInputCommandInteraction);
      await respond.defer('public');
      await respond.whisper({ content: 'only you see this' });
    });
    expect(fake.originalMessage(record.raw.id)).toBeUndefined();
    const followUp = fake.messages.get(record.followUpIds[0])!;
    expect(followUp.content).toBe('only you see this');
    expect(followUp.flags! & MessageFlag.Ephemeral).toBe(MessageFlag.Ephemeral);
  });

  it("edits the button's own message after the safety net's deferred update", async () => {
    const posted = await run(fake.slashCommand({ name: 'post' }), async (interaction) => {
      await new Responder(interaction as ChatInputCommandInteraction).send({
        content: 'with a button',
        components: [{ type: 1, components: [{ type: 2, style: 1, label: 'press', custom_id: 'vote:x' }] }],
      });
    });
    const message = fake.originalMessage(posted.raw.id)!;
    const press = await run(fake.buttonPress({ customId: 'vote:x', message }), async (interaction) => {
      const respond = new Responder(interaction as ButtonInteraction);
      await respond.acknowledge('update');
      await respond.update({ content: 'updated after the safety net' });
      await respond.whisper({ content: 'noted' });
    });
    expect(press.ack?.type).toBe(6);
    expect(fake.messages.get(message.id)?.content).toBe('updated after the safety net');
    expect(fake.messages.get(press.followUpIds[0])?.content).toBe('noted');
  });
});
