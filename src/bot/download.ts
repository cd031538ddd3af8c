// Downloads a member's upload from Discord's CDN to disk. Attachment URLs are signed and expire, so
// this runs as soon as the command arrives, and an expired link becomes advice to upload again.
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../errors.ts';

const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Saves `url` to `dest` (at most `maxBytes`); returns the bytes written. */
export async function downloadAttachment(url: string, dest: string, maxBytes: number): Promise<number> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
  } catch (err) {
    throw new UserError(
      `could not download the attachment (${(err as Error).message})`,
      'try again in a minute; if it keeps failing, tell an admin',
    );
  }
  if (response.status === 403 || response.status === 404 || response.status === 410) {
    throw new UserError(
      'the attachment link has expired or the file was deleted',
      'upload the file again and run the command right away',
    );
  }
  if (!response.ok || !response.body) {
    throw new UserError(
      `Discord's file server answered ${response.status} for the attachment`,
      'try again in a minute',
    );
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) throw tooLarge(declared, maxBytes);
  await mkdir(dirname(dest), { recursive: true });
  let written = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      written += chunk.length;
      done(written > maxBytes ? tooLarge(written, maxBytes) : null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
      limit,
      createWriteStream(dest),
    );
  } catch (err) {
    await rm(dest, { force: true });
    if (err instanceof UserError) throw err;
    throw new UserError(`the download of the attachment broke off (${(err as Error).message})`, 'try again');
  }
  return written;
}

function tooLarge(bytes: number, maxBytes: number): UserError {
  return new UserError(
    `the file is too large (${mib(bytes)}; the limit is ${mib(maxBytes)})`,
    'upload fewer or smaller images',
  );
}
