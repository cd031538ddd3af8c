import type { tf } from '../../tf.ts';

/** What tfjs passes a kernel function: its inputs, attributes and the backend running it. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];
