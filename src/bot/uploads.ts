// Checks shared by the commands that take an uploaded file (/toonify's photo, /finetune's dataset
// archive): what Discord says about the attachment before any download (type, size), and what the
// downloaded bytes really are. Each command keeps its own rules (which types, which limit); the
// wording and the mechanics are here, once.
import { open } from 'node:fs/promises';
import type { Attachment } from 'discord.js';
import { UserError } from '../errors.ts';

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The attachment's media type as Discord declared it, without parameters; undefined if none. */
export function declaredType(attachment: Pick<Attachment, 'contentType'>): string | undefined {
  return attachment.contentType?.split(';')[0].trim().toLowerCase() || undefined;
}

/** Refuses an attachment over `maxBytes` before it is downloaded. */
export function checkUploadSize(
  attachment: Pick<Attachment, 'size'>,
  what: string,
  maxBytes: number,
  hint: string,
): void {
  if (attachment.size > maxBytes)
    throw new UserError(`the ${what} is ${mib(attachment.size)}; the limit is ${mib(maxBytes)}`, hint);
}

/** The first `bytes` bytes of a downloaded file: names and declared types may lie, these do not. */
export async function readHead(path: string, bytes: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  const head = Buffer.alloc(bytes);
  try {
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
