import { describeParity } from './suite.ts';

await describeParity('cpu');
