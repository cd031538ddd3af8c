// Per-member cooldowns checked by the bot before it answers publicly: a press of Reroll two seconds
// after the last one gets a private "wait 1 s" at once, instead of a public "thinking" reply that
// is then deleted. The queue still enforces its policy (it is the authority, across bot processes);
// this is the same rule applied early, from what this process submitted itself.
import { QuotaExceededError } from '../jobs/errors.ts';
import { DEFAULT_POLICY, type QueuePolicy } from '../jobs/policy.ts';

export class Cooldowns {
  private readonly lastSubmit = new Map<string, number>();

  constructor(private readonly policy: QueuePolicy = DEFAULT_POLICY) {}

  /** Throws the queue's own cooldown refusal when `userId` submitted `kind` too recently. */
  check(userId: string, kind: string, now = Date.now()): void {
    const cooldownMs = this.policy.kinds[kind]?.cooldownMs;
    const last = this.lastSubmit.get(`${userId}:${kind}`);
    if (!cooldownMs || last === undefined) return;
    const waitMs = last + cooldownMs - now;
    if (waitMs <= 0) return;
    const seconds = Math.ceil(waitMs / 1000);
    throw new QuotaExceededError(
      'cooldown',
      `please wait ${seconds} s before the next ${kind}`,
      undefined,
      seconds,
    );
  }

  /** Notes a submission the queue accepted. */
  record(userId: string, kind: string, now = Date.now()): void {
    this.lastSubmit.set(`${userId}:${kind}`, now);
    // Old entries say nothing any more; keep the map from growing with every member ever seen.
    if (this.lastSubmit.size > 10_000) {
      const longest = Math.max(0, ...Object.values(this.policy.kinds).map((k) => k.cooldownMs ?? 0));
      for (const [key, at] of this.lastSubmit) if (now - at > longest) this.lastSubmit.delete(key);
    }
  }
}

/** The early check for an interaction; admins skip per-member limits, as in the queue. */
export function checkCooldown(
  ctx: { isAdmin: boolean; cooldowns: Cooldowns },
  userId: string,
  kind: string,
): void {
  if (!ctx.isAdmin) ctx.cooldowns.check(userId, kind);
}
