// A burst of /generate commands against the whole bot: the real discord.js client on the fake
// Discord, the embedded queue with the default per-user policy, and a forked worker generating with
// the tiny parity model. The fake refuses any acknowledgement after 3 s with 10062, so "every one
// acknowledged" here means every one made Discord's deadline.
import { describe, expect, it } from 'vitest';
import { measureBotBurst } from '../../src/bench/bot.ts';
import { assertRedisUp, REDIS_URL, skipServices } from '../jobs/harness.ts';

// FACESTYLE_SKIP_SERVICES=1 leaves out what needs the Redis server, as the queue suites do.
const QUEUES = [
  { queue: 'the embedded queue', queueUrl: undefined },
  ...(skipServices ? [] : [{ queue: 'BullMQ on Redis', queueUrl: REDIS_URL }]),
];

describe.each(QUEUES)('a burst of 40 /generate from 10 members through $queue', ({ queueUrl }) => {
  it('acknowledges every one in time, answers the accepted ones and refuses the rest with the quota', async () => {
    if (queueUrl) await assertRedisUp(queueUrl);
    const { timings } = await measureBotBurst({
      interactions: 40,
      users: 10,
      backend: 'wasm',
      timeoutMs: 90_000,
      queueUrl,
    });
    expect(timings).toHaveLength(40);
    for (const t of timings) {
      expect(t.ackMs, `interaction ${t.id} was not acknowledged`).toBeDefined();
      expect(t.lateCallbacks).toBe(0);
    }
    const outcomes = timings.map((t) => t.outcome);
    expect(outcomes.filter((o) => o !== 'answered' && o !== 'refused')).toEqual([]);
    // The 3 s cooldown lets each member's first command through and refuses the others of the burst.
    const members = new Set(timings.map((t) => t.userId));
    expect(members.size).toBe(10);
    for (const member of members) {
      expect(timings.some((t) => t.userId === member && t.outcome === 'answered')).toBe(true);
    }
    const refused = timings.filter((t) => t.outcome === 'refused');
    expect(refused.length).toBeGreaterThan(0);
    for (const t of refused) expect(t.message).toMatch(/^Please wait \d+ s before the next generate$/);
    for (const t of timings) expect(t.finalMs).toBeGreaterThanOrEqual(t.ackMs!);
  });
});
