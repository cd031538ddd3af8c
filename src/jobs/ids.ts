import { randomBytes } from 'node:crypto';

let lastMillisecond = -1;
let sequence = 0;

/**
 * A short job id that sorts by creation time, e.g. "jm3k9x2ab00q7x": it goes into Discord button ids
 * and commands, and it must not be a plain integer (BullMQ reserves those for its own ids). Ids made
 * in one millisecond carry a counter before their random part, so they sort in the order they were
 * made: the queue breaks ties of createdAt by id, and a burst of submissions must stay first come,
 * first served.
 */
export function newJobId(now = Date.now()): string {
  sequence = now === lastMillisecond ? sequence + 1 : 0;
  lastMillisecond = now;
  const counter = Math.min(sequence, 36 ** 2 - 1)
    .toString(36)
    .padStart(2, '0');
  const random = randomBytes(4).readUInt32BE(0).toString(36).padStart(7, '0').slice(-4);
  return `j${now.toString(36)}${counter}${random}`;
}
