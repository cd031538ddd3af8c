// The convolutions training needs: gradients on every backend (wasm has no filter-gradient kernel)
// that differentiate again (R1, path length). A network built with them (`convOps` of Generator /
// Discriminator) uses them for its own calls only; inference keeps tfjs's native convolutions,
// which are faster where they exist.
import type { ConvOps } from '../conv.ts';
import { installSecondOrderGradients } from './activations.ts';
import { differentiableConvOps } from './conv2d.ts';

/**
 * The ConvOps for networks that are trained. Also installs the second-order activation gradients:
 * those compute the same values as tfjs's own, so installing them process-wide changes no result.
 */
export function trainingConvOps(): ConvOps {
  installSecondOrderGradients();
  return differentiableConvOps;
}
