// The scan BotHarness.close() runs over every message of each end-to-end suite: it must catch the
// leaks members saw before (a checkpoint path in /blend's status, a manifest path in a refusal) and
// leave links, commands and mentions alone.
import type { APIMessage } from 'discord.js';
import { describe, expect, it } from 'vitest';
import type { MessageEvent } from '../support/fake-discord/index.ts';
import { serverPathLeaks } from './support/member-text.ts';

function event(message: Partial<APIMessage>): MessageEvent {
  return {
    at: 0,
    op: 'edit',
    message: { id: '1', content: '', embeds: [], attachments: [], components: [], ...message } as APIMessage,
  };
}

describe('serverPathLeaks', () => {
  const dataDir = '/srv/facestyle-data';

  it('finds absolute paths and the data folder name in any text a member reads', () => {
    const leaks = serverPathLeaks(
      [
        event({
          embeds: [{ description: 'demo-faces × **/srv/x/checkpoints/demo-lorelei-epoch03.safetensors**' }],
        }),
        event({ content: 'add more images; /tmp/run/datasets/x/manifest.json says why' }),
        event({ embeds: [{ title: 'could not read facestyle-data/uploads/a.zip' }] }),
        event({ embeds: [{ fields: [{ name: 'file', value: 'C:\\data\\x.png' }] }] }),
      ],
      dataDir,
    );
    expect(leaks).toHaveLength(4);
  });

  it('leaves links, slash commands, mentions and timestamps alone', () => {
    const leaks = serverPathLeaks(
      [
        event({
          content: '<@123> your generate is ready: https://discord.com/channels/1/2/3',
          embeds: [
            {
              title: 'Seeds 1-4',
              description:
                'Reproduce: `/generate seed:1 count:4 model:ffhq256 psi:0.7` · done <t:1700000000:R>',
            },
          ],
        }),
      ],
      dataDir,
    );
    expect(leaks).toEqual([]);
  });
});
