// One interaction's answers, in order. Discord allows exactly one acknowledgement within 3 s, then
// edits and follow-ups; commands, the dispatcher's safety-net defer and error handling all go
// through here, serialised, so they can never race into a second acknowledgement.
import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type InteractionEditReplyOptions,
  type InteractionReplyOptions,
  type InteractionUpdateOptions,
  type Message,
  MessageFlags,
} from 'discord.js';
import { errorReply } from './replies.ts';

export type Visibility = 'public' | 'ephemeral';
/** How an interaction is acknowledged: a reply seen by all or by the member, or (buttons) an update of the button's message. */
export type Acknowledgement = Visibility | 'update';
export type AnswerableInteraction = ChatInputCommandInteraction | ButtonInteraction;

type State =
  | 'open'
  | 'deferred-public'
  | 'deferred-ephemeral'
  | 'deferred-update'
  | 'replied-public'
  | 'replied-ephemeral';

export class Responder {
  private state: State = 'open';
  private chain: Promise<unknown> = Promise.resolve();
  /** When the interaction was acknowledged (ms since epoch). */
  acknowledgedAt?: number;

  constructor(readonly interaction: AnswerableInteraction) {}

  get acknowledged(): boolean {
    return this.state !== 'open';
  }

  /** The upload limit Discord gives this interaction (10 MiB unless the server is boosted). */
  get uploadLimit(): number {
    return this.interaction.attachmentSizeLimit ?? 10 * 1024 * 1024;
  }

  /** Acknowledges with a "thinking" reply seen by everyone or only the member; no-op once acknowledged. */
  defer(visibility: Visibility): Promise<void> {
    return this.serially(async () => {
      if (this.state !== 'open') return;
      await this.interaction.deferReply(visibility === 'ephemeral' ? { flags: MessageFlags.Ephemeral } : {});
      this.markAcknowledged(visibility === 'ephemeral' ? 'deferred-ephemeral' : 'deferred-public');
    });
  }

  /** Acknowledges the way `ack` says; no-op once acknowledged. */
  acknowledge(ack: Acknowledgement): Promise<void> {
    return ack === 'update' ? this.deferUpdate() : this.defer(ack);
  }

  /** Acknowledges a button without a new message (its message may be edited later). */
  deferUpdate(): Promise<void> {
    return this.serially(async () => {
      if (this.state !== 'open') return;
      await this.buttonInteraction().deferUpdate();
      this.markAcknowledged('deferred-update');
    });
  }

  /** Replaces the message a button is on, acknowledging the press. */
  update(payload: InteractionUpdateOptions): Promise<void> {
    return this.serially(async () => {
      const button = this.buttonInteraction();
      if (this.state === 'open') {
        await button.update(payload);
        this.markAcknowledged('deferred-update');
      } else {
        await button.editReply(payload as InteractionEditReplyOptions);
      }
    });
  }

  /**
   * The public answer: the first reply, or an edit of the reply (the deferred one included).
   * Resolves with the message, whose id a caller can keep.
   */
  send(payload: InteractionEditReplyOptions): Promise<Message> {
    return this.serially(async () => {
      if (this.state === 'open') {
        const response = await this.interaction.reply({
          ...(payload as InteractionReplyOptions),
          withResponse: true,
        });
        this.markAcknowledged('replied-public');
        const message = response.resource?.message;
        return message ?? (await this.interaction.fetchReply());
      }
      const message = await this.interaction.editReply(payload);
      if (this.state === 'deferred-public') this.state = 'replied-public';
      if (this.state === 'deferred-ephemeral') this.state = 'replied-ephemeral';
      return message;
    });
  }

  /**
   * A message only the member sees: the reply itself when nothing was sent yet or the deferred
   * reply is ephemeral; after a public "thinking" reply, that reply is removed and the message
   * follows up, so a failure never stays in the channel for everyone.
   */
  whisper(payload: InteractionReplyOptions): Promise<void> {
    const ephemeral = { ...payload, flags: MessageFlags.Ephemeral } as InteractionReplyOptions & {
      flags: MessageFlags.Ephemeral;
    };
    return this.serially(async () => {
      switch (this.state) {
        case 'open':
          await this.interaction.reply(ephemeral);
          this.markAcknowledged('replied-ephemeral');
          return;
        case 'deferred-ephemeral':
        case 'replied-ephemeral':
          await this.interaction.editReply(ephemeral as InteractionEditReplyOptions);
          this.state = 'replied-ephemeral';
          return;
        case 'deferred-public':
          await this.interaction.deleteReply().catch(() => {});
          await this.interaction.followUp(ephemeral);
          return;
        case 'replied-public':
        case 'deferred-update':
          await this.interaction.followUp(ephemeral);
          return;
      }
    });
  }

  /**
   * A new message after the reply, which stays as it is (a summary the member still needs). Its
   * creation notifies anyone it mentions, which an edit never does.
   */
  followUp(payload: InteractionReplyOptions, visibility: Visibility): Promise<Message> {
    return this.serially(async () => {
      if (this.state === 'open') throw new Error('a follow-up needs an acknowledged interaction');
      const flags = visibility === 'ephemeral' ? { flags: MessageFlags.Ephemeral as const } : {};
      return this.interaction.followUp({ ...payload, ...flags } as InteractionReplyOptions);
    });
  }

  /** Tells the member what went wrong, privately. */
  fail(err: unknown, reference: string): Promise<void> {
    return this.whisper(errorReply(err, reference));
  }

  private markAcknowledged(state: State): void {
    this.state = state;
    this.acknowledgedAt = Date.now();
  }

  private buttonInteraction(): ButtonInteraction {
    if (!this.interaction.isButton()) throw new Error('only a button press can update its message');
    return this.interaction;
  }

  private serially<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.chain.then(operation);
    this.chain = next.catch(() => {});
    return next;
  }
}
