// vote:<resultId>: toggles the member's vote and shows the new tally on the button.
import type { APIActionRowComponent, APIComponentInActionRow, ButtonInteraction } from 'discord.js';
import type { ButtonHandler } from '../command.ts';
import { notice, voteButton } from '../replies.ts';
import { ButtonAction, buttonId } from './ids.ts';

/** The message's rows with the vote button of `resultId` relabelled to `votes`. */
export function withVoteCount(interaction: ButtonInteraction, resultId: string, votes: number) {
  const id = buttonId(ButtonAction.Vote, resultId);
  return interaction.message.components.map((row) => {
    const json = row.toJSON() as APIActionRowComponent<APIComponentInActionRow>;
    if (!('components' in json)) return json;
    return {
      ...json,
      components: json.components.map((component) =>
        'custom_id' in component && component.custom_id === id
          ? voteButton(resultId, votes).toJSON()
          : component,
      ),
    };
  });
}

export const vote: ButtonHandler = {
  action: ButtonAction.Vote,
  acknowledgement: 'update',
  async execute(interaction, resultId, ctx) {
    // A local SQLite transaction: fast enough to answer with the updated message directly.
    // The button's result id comes from the client: the vote counts only in that result's server.
    const outcome = ctx.services.votes.toggle(resultId, interaction.user.id, Date.now(), ctx.actor.guildId);
    await ctx.respond.update({ components: withVoteCount(interaction, resultId, outcome.votes) });
    await ctx.respond.whisper(
      notice(
        outcome.voted
          ? `👍 Vote counted (${outcome.votes} in all). Press again to take it back.`
          : `Vote taken back (${outcome.votes} left).`,
      ),
    );
  },
};
