// A loss-curve chart for a training run: one panel per series (G and D loss, R1, path length,
// augment p) against kimg, drawn as SVG and rasterised by sharp (librsvg), so no chart library
// or font file is needed.
import sharp from 'sharp';
import { writeImage } from '../../images/index.ts';

export interface CurvePoint {
  kimg: number;
  values: Record<string, number>;
}

const PANEL_WIDTH = 640;
const PANEL_HEIGHT = 150;
const MARGIN = { left: 64, right: 16, top: 24, bottom: 22 };
const MAX_DOTTED_POINTS = 64;
const COLOURS = ['#4e79a7', '#e15759', '#59a14f', '#f28e2b', '#b07aa1', '#76b7b2'];

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  return abs >= 1000 || abs < 0.01 ? v.toExponential(1) : Number(v.toPrecision(3)).toString();
}

/**
 * The chart as SVG: `series` panels stacked, in the given order, each with its own y range.
 * `kimg` is the x value; `xUnit` names it (a score curve plots epochs there).
 */
export function lossCurveSvg(points: CurvePoint[], series: string[], title: string, xUnit = 'kimg'): string {
  const plotW = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxKimg = Math.max(1e-9, ...points.map((p) => p.kimg));
  const panels = series.map((name, i) => {
    const pts = points.filter((p) => Number.isFinite(p.values[name]));
    const ys = pts.map((p) => p.values[name]);
    let lo = Math.min(...ys, Number.POSITIVE_INFINITY);
    let hi = Math.max(...ys, Number.NEGATIVE_INFINITY);
    if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
    if (hi - lo < 1e-12) [lo, hi] = [lo - 0.5, hi + 0.5];
    const x = (k: number) => MARGIN.left + (k / maxKimg) * plotW;
    const y = (v: number) => MARGIN.top + (1 - (v - lo) / (hi - lo)) * plotH;
    const path = pts
      .map((p, j) => `${j ? 'L' : 'M'}${x(p.kimg).toFixed(1)},${y(p.values[name]).toFixed(1)}`)
      .join('');
    // Sparse series (a score per snapshot) get a dot per point, so even one value shows.
    const dots =
      pts.length <= MAX_DOTTED_POINTS
        ? pts
            .map(
              (p) =>
                `<circle cx="${x(p.kimg).toFixed(1)}" cy="${y(p.values[name]).toFixed(1)}" r="3" fill="${COLOURS[i % COLOURS.length]}"/>`,
            )
            .join('')
        : '';
    const top = i * PANEL_HEIGHT;
    return `<g transform="translate(0,${top})">
  <rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="#ffffff" stroke="#cccccc"/>
  <text x="${MARGIN.left}" y="${MARGIN.top - 7}" font-size="13" font-weight="bold">${escapeXml(name)}</text>
  <text x="${MARGIN.left - 6}" y="${MARGIN.top + 10}" font-size="11" text-anchor="end">${formatTick(hi)}</text>
  <text x="${MARGIN.left - 6}" y="${MARGIN.top + plotH}" font-size="11" text-anchor="end">${formatTick(lo)}</text>
  <text x="${MARGIN.left + plotW}" y="${MARGIN.top + plotH + 15}" font-size="11" text-anchor="end">${formatTick(maxKimg)} ${escapeXml(xUnit)}</text>
  ${path ? `<path d="${path}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.5"/>` : ''}
  ${dots}
</g>`;
  });
  const height = series.length * PANEL_HEIGHT + 28;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${PANEL_WIDTH}" height="${height}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">
<rect width="100%" height="100%" fill="#f7f7f7"/>
<text x="${PANEL_WIDTH / 2}" y="18" font-size="14" text-anchor="middle">${escapeXml(title)}</text>
<g transform="translate(0,24)">${panels.join('\n')}</g>
</svg>`;
}

/** Writes the chart as a PNG (atomically); returns the path written. */
export async function writeLossCurve(
  path: string,
  points: CurvePoint[],
  series: string[],
  title: string,
  xUnit = 'kimg',
): Promise<string> {
  const { data, info } = await sharp(Buffer.from(lossCurveSvg(points, series, title, xUnit)))
    .png()
    .toBuffer({ resolveWithObject: true });
  return writeImage(path, { buffer: data, format: 'png', width: info.width, height: info.height, scaled: 1 });
}
