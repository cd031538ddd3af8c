// The one place the project imports TensorFlow.js from. tfjs-core alone registers no gradients and
// no chained ops in Node (its ESM entry points for them do not load under Node's resolver); the
// full `@tensorflow/tfjs` bundle registers both into tfjs's global registries, which every backend
// shares with this single engine instance.
import '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

// PROD skips tfjs's debug-only checks and its console banner suggesting tfjs-node.
tf.env().set('PROD', true);

export { tf };
export type Tensor = tf.Tensor;
export type Tensor1D = tf.Tensor1D;
export type Tensor2D = tf.Tensor2D;
export type Tensor3D = tf.Tensor3D;
export type Tensor4D = tf.Tensor4D;
