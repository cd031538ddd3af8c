// Removes every key of one queue prefix: the lane queues and the cancel keys. For benchmarks and
// tests that run under a prefix of their own; never point it at the production prefix.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { LANES } from '../kinds.ts';
import { laneQueueName, redisOptions } from './names.ts';

export async function removeQueueKeys(url: string, prefix: string): Promise<void> {
  for (const lane of LANES) {
    const queue = new Queue(laneQueueName(lane), { connection: redisOptions(url), prefix });
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
  }
  const redis = new Redis(redisOptions(url));
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}
