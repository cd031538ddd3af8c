// What a finished result offers besides its image: the buttons to go on from it (reroll, vote, and
// per face "enlarge" and "variations", as members of image bots expect), the exact slash command
// that makes it again, and where a follow-up came from. Everything a button needs is in its
// custom id (components/ids.ts), so the buttons work on messages older than the bot process.
import { ButtonBuilder, ButtonStyle } from 'discord.js';
import type { JobInfo } from '../jobs/types.ts';
import { ButtonAction, buttonId } from './components/ids.ts';
import { buttonRow, formatSeeds, messageLink, modelLabel, rerollButton, voteButton } from './replies.ts';

/** How far a variation moves from its face: visibly different, still the same face (tuned on demo-faces). */
export const VARIATION_STRENGTH = 0.6;
/** Faces offered per-face buttons: two rows of five each for enlarge and variations. */
export const MAX_FACE_BUTTONS = 10;
const PER_ROW = 5;

/** `enlarge:<job>:<face>`; the face is 0-based in the job's seed order. */
export function faceButtonId(action: 'enlarge' | 'vary', jobId: string, face: number): string {
  return buttonId(action === 'enlarge' ? ButtonAction.Enlarge : ButtonAction.Vary, `${jobId}:${face}`);
}

/** The job id and face of an `enlarge:`/`vary:` argument; undefined when malformed. */
export function parseFaceArgument(argument: string): { jobId: string; face: number } | undefined {
  const colon = argument.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const face = Number(argument.slice(colon + 1));
  if (!Number.isInteger(face) || face < 0) return undefined;
  return { jobId: argument.slice(0, colon), face };
}

/** Faces of a generate or blend result, in the order its grid shows them. */
export function faceCount(job: JobInfo): number {
  return job.kind === 'generate' || job.kind === 'blend' ? job.payload.seeds.length : 0;
}

function faceRows(job: JobInfo, action: 'enlarge' | 'vary', faces: number) {
  const rows = [];
  for (let start = 0; start < faces; start += PER_ROW) {
    const buttons = [];
    for (let face = start; face < Math.min(faces, start + PER_ROW); face++) {
      buttons.push(
        new ButtonBuilder()
          .setCustomId(faceButtonId(action, job.id, face))
          .setLabel(`${action === 'enlarge' ? 'Enlarge' : 'Vary'} ${face + 1}`)
          .setEmoji(action === 'enlarge' ? '🔍' : '🔀')
          .setStyle(ButtonStyle.Secondary),
      );
    }
    rows.push(buttonRow(...buttons));
  }
  return rows;
}

/**
 * Reroll and vote, then per face "enlarge" (one seed, full size) and "variations" (nearby latents
 * of that face) for generate and blend grids of more than one face. A variation grid offers
 * enlarge only: a variation of a variation is not a seed a command can name.
 */
export function resultRows(job: JobInfo, votes: number) {
  const rows = [buttonRow(rerollButton(job.id), voteButton(job.id, votes))];
  const faces = Math.min(faceCount(job), MAX_FACE_BUTTONS);
  if (faces < 2) return rows;
  rows.push(...faceRows(job, 'enlarge', faces));
  const isVariation = (job.kind === 'generate' || job.kind === 'blend') && job.payload.variation;
  if (!isVariation) rows.push(...faceRows(job, 'vary', faces));
  return rows;
}

/** How the per-face buttons count, for the result's text. */
export function faceButtonsLegend(job: JobInfo): string | undefined {
  const faces = faceCount(job);
  if (faces < 2) return undefined;
  const order = job.kind === 'blend' ? 'rows top to bottom' : 'left to right, top to bottom';
  const more = faces > MAX_FACE_BUTTONS ? `; buttons for the first ${MAX_FACE_BUTTONS}` : '';
  return `Faces are numbered ${order}${more}.`;
}

/** `seed:5 count:4`: a run of consecutive seeds as /generate takes it; undefined otherwise. */
function consecutiveSeedOptions(seeds: number[]): string | undefined {
  const consecutive = seeds.every((seed, i) => seed === seeds[0] + i);
  return consecutive ? `seed:${seeds[0]} count:${seeds.length}` : undefined;
}

/** The slash command that makes this result again, exactly; undefined where none can. */
export function reproduceCommand(job: JobInfo): string | undefined {
  switch (job.kind) {
    case 'generate': {
      const p = job.payload;
      const seeds = consecutiveSeedOptions(p.seeds);
      if (!seeds) return undefined;
      const variation = p.variation ? ` variation_of:${p.variation.of}` : '';
      return `/generate ${seeds}${variation} model:${modelLabel(p.checkpoint)} psi:${p.psi}`;
    }
    case 'blend': {
      const p = job.payload;
      const { styleModel, styleEpoch } = job.meta;
      if (!styleModel || !styleEpoch) return undefined;
      const options = [
        `epochs:${styleEpoch}`,
        `layer:${p.layer}`,
        `model:${styleModel}`,
        `seeds:${formatSeeds(p.seeds).replace(/ /g, '')}`,
      ];
      if (p.variation) options.push(`variation_of:${p.variation.of}`);
      if (p.direction && p.direction !== 'texture') options.push(`direction:${p.direction}`);
      if (p.width) options.push(`width:${p.width}`);
      if (p.matrix) options.push('matrix:True');
      return `/blend ${options.join(' ')}`;
    }
    case 'toonify': {
      const p = job.payload;
      const style = p.blend
        ? `blend:${modelLabel(p.blend)}`
        : `blend:${modelLabel(p.style ?? '')} layer:${p.layer}`;
      const face = typeof p.face === 'number' ? ` face:${p.face}` : '';
      return `/toonify photo:(your photo) ${style}${face}`;
    }
    default:
      return undefined;
  }
}

/** "Reroll of <link>", "Face 3 of <link>, enlarged": where a follow-up came from. */
export function sourceLine(job: JobInfo): string | undefined {
  const { sourceGuild, sourceChannel, sourceMessage, followUp, sourceFace } = job.meta;
  if (!followUp || !sourceChannel || !sourceMessage) return undefined;
  const link = `[this result](${messageLink(sourceGuild ?? '', sourceChannel, sourceMessage)})`;
  const face = sourceFace ? Number(sourceFace) + 1 : undefined;
  if (followUp === 'reroll') return `Reroll of ${link}`;
  if (followUp === 'enlarge') return `Face ${face} of ${link}, enlarged`;
  if (followUp === 'vary') return `Variations of face ${face} of ${link}`;
  return undefined;
}

/** The lines under a result's description: where it came from and how to make it again. */
export function resultFooterLines(job: JobInfo): string[] {
  const lines: string[] = [];
  const source = sourceLine(job);
  if (source) lines.push(source);
  const command = reproduceCommand(job);
  if (command) lines.push(`Reproduce: \`${command}\``);
  const legend = faceButtonsLegend(job);
  if (legend) lines.push(legend);
  return lines;
}

/** The enlarge result: a single image wants to be seen at a size where its pixels show. */
export function isSingleFace(job: JobInfo): boolean {
  return job.kind === 'generate' && job.payload.seeds.length === 1;
}
