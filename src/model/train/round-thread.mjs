// A training round thread (round-threads.ts): plain JavaScript that registers tsx, as
// bin/facestyle.js does, then runs the TypeScript thread.
import { register } from 'tsx/esm/api';

register();
await import('./round-thread.ts');
