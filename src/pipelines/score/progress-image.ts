// The picture a fine-tune's progress message shows: the latest preview grid, and beside it the
// loss curve with the score-by-epoch curve under it, so an admin sees where the model peaked.
import sharp, { type OverlayOptions } from 'sharp';
import { pipelineToRgb } from '../../images/compose.ts';
import { encodeUnderLimit } from '../../images/encode.ts';
import { writeImage } from '../../images/index.ts';
import { type CurvePoint, lossCurveSvg } from '../../model/train/loss-curve.ts';

export interface ProgressImageInput {
  title: string;
  /** The preview grid (PNG) of the newest snapshot. */
  previewPath?: string;
  /** Loss values against kimg. */
  losses: CurvePoint[];
  lossSeries: string[];
  /** KID by epoch (CurvePoint.kimg holds the epoch); drawn when there is at least one. */
  scores: CurvePoint[];
  metric?: string;
}

const GAP = 8;
const BACKGROUND = { r: 247, g: 247, b: 247 };

async function svgToPng(svg: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(Buffer.from(svg)).png().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Writes the progress picture (PNG, under Discord's upload limit); returns the path written. */
export async function writeProgressImage(path: string, input: ProgressImageInput): Promise<string> {
  const charts = [await svgToPng(lossCurveSvg(input.losses, input.lossSeries, `${input.title}: losses`))];
  if (input.metric && input.scores.length) {
    charts.push(
      await svgToPng(
        lossCurveSvg(
          input.scores,
          [input.metric],
          `${input.metric} by epoch, against the training images (lower is better)`,
          'epoch',
        ),
      ),
    );
  }
  const preview = input.previewPath
    ? await sharp(input.previewPath)
        .removeAlpha()
        .png()
        .toBuffer({ resolveWithObject: true })
        .then(({ data, info }) => ({ data, width: info.width, height: info.height }))
        .catch(() => undefined)
    : undefined;
  const chartsWidth = Math.max(...charts.map((c) => c.width));
  const chartsHeight = charts.reduce((sum, c) => sum + c.height, 0);
  const left = preview ? preview.width + GAP : 0;
  const width = left + chartsWidth;
  const height = Math.max(chartsHeight, preview?.height ?? 0);
  const layers: OverlayOptions[] = [];
  if (preview) layers.push({ input: preview.data, left: 0, top: 0 });
  let top = 0;
  for (const chart of charts) {
    layers.push({ input: chart.data, left, top });
    top += chart.height;
  }
  const canvas = await pipelineToRgb(
    sharp({ create: { width, height, channels: 3, background: BACKGROUND } }).composite(layers),
  );
  const encoded = await encodeUnderLimit(canvas);
  return writeImage(path, encoded);
}
