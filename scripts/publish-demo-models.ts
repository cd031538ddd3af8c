// Copies trained demo runs into checkpoints/ in F16: the base with G_ema, G and D (so users can
// fine-tune from it), each style snapshot with G_ema only (enough to generate and blend).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { initBackend } from '../src/model/backend.ts';
import { disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/model/checkpoint.ts';

const [basePath, styleRun] = process.argv.slice(2);
await initBackend('cpu');
const base = await loadCheckpoint(basePath);
await saveCheckpoint(
  'checkpoints/demo-faces.safetensors',
  { ...base, meta: { ...base.meta, kind: 'demo' } },
  { dtype: 'F16' },
);
console.log(`checkpoints/demo-faces.safetensors (epoch ${base.meta.epoch}, ${base.meta.kimg} kimg)`);
disposeCheckpoint(base);
for (const file of (await readdir(styleRun))
  .filter((f) => f.startsWith('snapshot-') && f.endsWith('.safetensors'))
  .sort()) {
  const snap = await loadCheckpoint(join(styleRun, file), { networks: ['G_ema'] });
  const out = `checkpoints/demo-lorelei-epoch${String(snap.meta.epoch).padStart(2, '0')}.safetensors`;
  await saveCheckpoint(
    out,
    { config: { G: snap.config.G }, meta: { ...snap.meta, parent: 'demo-faces' }, G_ema: snap.G_ema },
    { dtype: 'F16' },
  );
  console.log(out);
  disposeCheckpoint(snap);
}
