// Switches every network onto the convolutions and gradients training needs: gradients on every
// backend (wasm has no filter-gradient kernel) that differentiate again (R1, path length).
// Inference keeps tfjs's native convolutions, which are faster where they exist.
import { nativeConvOps, setConvOps } from '../conv.ts';
import { installSecondOrderGradients } from './activations.ts';
import { differentiableConvOps } from './conv2d.ts';

export function useTrainingOps(on: boolean): void {
  // The replaced activation gradients compute the same values as tfjs's own, so they stay
  // installed once training has run; only the convolutions switch back.
  if (on) installSecondOrderGradients();
  setConvOps(on ? differentiableConvOps : nativeConvOps);
}
