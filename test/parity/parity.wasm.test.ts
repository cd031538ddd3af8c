import { describeParity } from './suite.ts';

await describeParity('wasm');
