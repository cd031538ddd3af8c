// Every slash command of the bot; registration and the dispatcher both read this list.
import type { SlashCommand } from '../command.ts';
import { blend } from './blend.ts';
import { cancel } from './cancel.ts';
import { contest } from './contest.ts';
import { finetune } from './finetune.ts';
import { generate } from './generate.ts';
import { help } from './help.ts';
import { leaderboard } from './leaderboard.ts';
import { models } from './models.ts';
import { queue } from './queue.ts';
import { toonify } from './toonify.ts';

export const COMMANDS: readonly SlashCommand[] = [
  generate,
  blend,
  toonify,
  finetune,
  models,
  queue,
  cancel,
  leaderboard,
  contest,
  help,
];
