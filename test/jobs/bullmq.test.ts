import { beforeAll, describe } from 'vitest';
import { assertRedisUp, REDIS_URL, skipServices } from './harness.ts';
import { defineQueueSuite } from './queue-suite.ts';

describe.skipIf(skipServices)('BullMQ on a real Redis', () => {
  beforeAll(() => assertRedisUp(REDIS_URL));
  defineQueueSuite('bullmq');
});
