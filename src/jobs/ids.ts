import { randomBytes } from 'node:crypto';

/**
 * A short job id that sorts by creation time, e.g. "jm3k9x2ab7q": it goes into Discord button ids
 * and commands, and it must not be a plain integer (BullMQ reserves those for its own ids).
 */
export function newJobId(now = Date.now()): string {
  const random = randomBytes(4).readUInt32BE(0).toString(36).padStart(7, '0').slice(-4);
  return `j${now.toString(36)}${random}`;
}
