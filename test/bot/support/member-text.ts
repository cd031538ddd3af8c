// What members read must never show the server's insides: an absolute path, or the name of the
// data folder (the job's checkpoint reference, a dataset manifest, a CLI hint). BotHarness.close()
// scans every message the fake Discord stored during a suite with this, so each end-to-end suite
// fails on a leak, not only the tests written to look for one.
import { basename } from 'node:path';
import type { APIMessage } from 'discord.js';
import type { MessageEvent } from '../../support/fake-discord/index.ts';

/** Every piece of text of a message a member can read. */
export function memberText(message: APIMessage): string[] {
  const texts = [message.content];
  for (const embed of message.embeds) {
    texts.push(
      embed.title ?? '',
      embed.description ?? '',
      embed.footer?.text ?? '',
      embed.author?.name ?? '',
    );
    for (const field of embed.fields ?? []) texts.push(field.name, field.value);
  }
  for (const attachment of message.attachments) texts.push(attachment.filename);
  for (const row of message.components ?? []) {
    for (const component of (row as { components?: Array<Record<string, unknown>> }).components ?? []) {
      if (typeof component.label === 'string') texts.push(component.label);
      if (typeof component.placeholder === 'string') texts.push(component.placeholder);
    }
  }
  return texts.filter(Boolean);
}

// A slash after a space, quote, bracket, backtick, asterisk or line start, then at least one more
// slash: "/tmp/x/y.png", "**/data/checkpoints/a.safetensors**". URLs ("https://discord.com/...")
// and commands ("/blend model:x") do not match.
const UNIX_PATH = /(?:^|[\s`*'"([{])\/[\w.-]+\/[\w./-]*/;
const WINDOWS_PATH = /\b[A-Za-z]:\\[\w\\. -]+/;

/** The texts in `events` that show an absolute path or the data folder's name, with where. */
export function serverPathLeaks(events: readonly MessageEvent[], dataDir: string): string[] {
  const folderName = basename(dataDir);
  const leaks: string[] = [];
  for (const event of events) {
    if (event.op === 'delete') continue;
    for (const text of memberText(event.message)) {
      if (UNIX_PATH.test(text) || WINDOWS_PATH.test(text) || text.includes(folderName))
        leaks.push(`message ${event.message.id} (${event.op}): ${text}`);
    }
  }
  return leaks;
}
