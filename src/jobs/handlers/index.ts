// The handlers every production worker loads. Model handlers (generate, blend, finetune, toonify)
// go here as they are written: `registry.register(kind, handler)`, or `registry.registerBatch` for
// kinds that batch (generate). Worker processes load this module by default; more modules can be
// added with `facestyle worker --handlers <module>` or FACESTYLE_WORKER_HANDLERS.
import type { HandlerRegistry, WorkerEnvironment } from '../handlers.ts';
import type { JobKinds } from '../kinds.ts';
import { noopHandler } from './noop.ts';

export function register(registry: HandlerRegistry<JobKinds>, _env: WorkerEnvironment): void {
  registry.register('noop', noopHandler);
}
