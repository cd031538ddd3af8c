// Copies trained demo runs into checkpoints/ in F16: the base with G_ema, G and D (so users can
// fine-tune from it), each style snapshot with G_ema only (enough to generate and blend), under the
// names the offline demo and the bot look for: demo-faces, and demo-lorelei by epoch.
//
// The per-layer noise inputs are switched off (noise_strength 0) in what is published: in these
// short runs G came to lean on them for texture, which at 32x32 reads as speckle over every face
// (docs/demo-models.md shows the same snapshot with and without them). Everything else is as trained.
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { initBackend } from '../src/model/backend.ts';
import {
  type CheckpointMeta,
  disposeCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from '../src/model/checkpoint/io.ts';
import type { ParamStore } from '../src/model/params.ts';
import { tf } from '../src/model/tf.ts';

const BASE = 'demo-faces';
const STYLE = 'demo-lorelei';

function withoutNoise(params: ParamStore | undefined): ParamStore | undefined {
  if (!params) return undefined;
  return new Map(
    [...params].map(([name, t]) => [name, name.endsWith('noise_strength') ? tf.zerosLike(t) : t]),
  );
}

function published(meta: CheckpointMeta, name: string, kind: CheckpointMeta['kind']): CheckpointMeta {
  return { ...meta, name, kind, extra: { ...meta.extra, publishedWith: 'noise_strength set to 0' } };
}

const [basePath, styleRun] = process.argv.slice(2);
await initBackend('cpu');
await mkdir('checkpoints', { recursive: true });
const base = await loadCheckpoint(basePath);
await saveCheckpoint(
  `checkpoints/${BASE}.safetensors`,
  {
    ...base,
    meta: published(base.meta, BASE, 'demo'),
    G_ema: withoutNoise(base.G_ema),
    G: withoutNoise(base.G),
  },
  { dtype: 'F16' },
);
console.log(`checkpoints/${BASE}.safetensors (epoch ${base.meta.epoch}, ${base.meta.kimg} kimg)`);
disposeCheckpoint(base);
for (const file of (await readdir(styleRun))
  .filter((f) => f.startsWith('snapshot-') && f.endsWith('.safetensors'))
  .sort()) {
  const snap = await loadCheckpoint(join(styleRun, file), { networks: ['G_ema'] });
  const out = `checkpoints/${STYLE}-epoch${String(snap.meta.epoch).padStart(2, '0')}.safetensors`;
  await saveCheckpoint(
    out,
    {
      config: { G: snap.config.G },
      meta: { ...published(snap.meta, STYLE, snap.meta.kind), parent: BASE },
      G_ema: withoutNoise(snap.G_ema),
    },
    { dtype: 'F16' },
  );
  console.log(out);
  disposeCheckpoint(snap);
}
