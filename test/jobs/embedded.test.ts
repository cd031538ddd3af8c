import { defineQueueSuite } from './queue-suite.ts';

defineQueueSuite('embedded');
