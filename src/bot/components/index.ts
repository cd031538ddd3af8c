// Button routing by custom id prefix. There are no collectors: any button the bot ever posted is
// answered from its id alone, after restarts too; ids from removed features get a clear answer.
import type { ButtonHandler } from '../command.ts';
import { cancelJob } from './cancel.ts';
import { enlarge, reroll, vary } from './follow-ups.ts';
import { vote } from './vote.ts';

export const BUTTONS: readonly ButtonHandler[] = [vote, reroll, enlarge, vary, cancelJob];

export function findButtonHandler(action: string): ButtonHandler | undefined {
  return BUTTONS.find((handler) => handler.action === action);
}
