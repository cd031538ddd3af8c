// Button custom ids: "<action>:<argument>". Everything a button needs is in its id, so a button on
// a message posted before a restart still works (Discord keeps components forever).
export const ButtonAction = {
  Vote: 'vote',
  Reroll: 'reroll',
  Cancel: 'cancel',
  /** enlarge:<jobId>:<face>: one face of a grid alone, full size. */
  Enlarge: 'enlarge',
  /** vary:<jobId>:<face>: nearby latents of one face of a grid. */
  Vary: 'vary',
} as const;
export type ButtonActionName = (typeof ButtonAction)[keyof typeof ButtonAction];

// Discord's limit on custom_id.
const MAX_CUSTOM_ID = 100;

export function buttonId(action: ButtonActionName, argument: string): string {
  const id = `${action}:${argument}`;
  if (id.length > MAX_CUSTOM_ID) throw new Error(`custom id longer than ${MAX_CUSTOM_ID} characters: ${id}`);
  return id;
}

/** Splits a custom id at its first colon; ids without one have an empty argument. */
export function parseButtonId(customId: string): { action: string; argument: string } {
  const colon = customId.indexOf(':');
  return colon < 0
    ? { action: customId, argument: '' }
    : { action: customId.slice(0, colon), argument: customId.slice(colon + 1) };
}
