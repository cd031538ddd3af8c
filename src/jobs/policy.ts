// Who may queue what and how much: per-user quotas and cooldowns, a cap per server and a global cap
// on waiting jobs. Pure decisions; the queue supplies the counts. A server's admins skip per-user
// limits, never their server's cap nor the global one, so no one server can fill the queue; and
// admin rights count in the admin's own server only (the job's server decides, not the command's).

import { plural } from '../text.ts';
import { NotAllowedError, QueueFullError, QuotaExceededError } from './errors.ts';
import type { Actor, JobRecord } from './types.ts';

export interface KindPolicy {
  /** Queued plus running jobs of this kind one user may have. */
  maxActivePerUser?: number;
  /** Minimum time between two submissions of this kind by one user. */
  cooldownMs?: number;
  /** Submissions of this kind per user per UTC day. */
  dailyPerUser?: number;
}

export interface QueuePolicy {
  /** Jobs waiting (not running) across all lanes. */
  maxQueued: number;
  /** Queued plus running jobs of any kind one user may have. */
  maxActivePerUser: number;
  /**
   * Queued plus running jobs submitted from one server (Discord guild), admins' included; absent: a
   * quarter of `maxQueued`. Operators (no server) are held by `maxQueued` only.
   */
  maxActivePerServer?: number;
  kinds: Record<string, KindPolicy>;
}

export const DEFAULT_POLICY: QueuePolicy = {
  maxQueued: 200,
  maxActivePerUser: 4,
  maxActivePerServer: 50,
  kinds: {
    generate: { cooldownMs: 3_000, dailyPerUser: 500 },
    blend: { cooldownMs: 5_000, dailyPerUser: 200 },
    toonify: { cooldownMs: 10_000, dailyPerUser: 100 },
    finetune: { maxActivePerUser: 1, dailyPerUser: 10 },
  },
};

/** What the queue knows about the system and the submitting user at submission time. */
export interface SubmitSnapshot {
  queuedTotal: number;
  userActive: number;
  /** Queued plus running jobs of the actor's server; ignored for operators (no server). */
  serverActive?: number;
  userActiveOfKind: number;
  /** Last submission of this kind by this user, ms since epoch. */
  userLastSubmitAt?: number;
  userSubmittedToday: number;
  now: number;
}

// The user's own limits are checked first, then the server's, then the queue's: a refusal names
// the narrowest rule that holds, so a user in a cooldown hears how long to wait (which still
// holds once the queue empties) rather than that the queue is full right now.
export function checkSubmit(policy: QueuePolicy, kind: string, actor: Actor, snap: SubmitSnapshot): void {
  if (!actor.isAdmin) checkUserLimits(policy, kind, snap);
  if (actor.guildId !== undefined) {
    const serverCap = serverLimit(policy);
    if ((snap.serverActive ?? 0) >= serverCap) {
      throw new QuotaExceededError(
        'server',
        `this server already has ${plural(snap.serverActive ?? 0, 'job')} queued or running (limit ${serverCap})`,
        'wait for some to finish: the queue is shared with other servers',
      );
    }
  }
  if (snap.queuedTotal >= policy.maxQueued) throw new QueueFullError(policy.maxQueued);
}

function checkUserLimits(policy: QueuePolicy, kind: string, snap: SubmitSnapshot): void {
  const rules = policy.kinds[kind] ?? {};
  if (snap.userActive >= policy.maxActivePerUser) {
    throw new QuotaExceededError(
      'active',
      `you already have ${plural(snap.userActive, 'job')} queued or running (limit ${policy.maxActivePerUser})`,
      'wait for one to finish, or cancel one with `/cancel`',
    );
  }
  if (rules.maxActivePerUser !== undefined && snap.userActiveOfKind >= rules.maxActivePerUser) {
    throw new QuotaExceededError(
      'active',
      `you already have ${plural(snap.userActiveOfKind, `${kind} job`)} queued or running (limit ${rules.maxActivePerUser})`,
      'wait for it to finish, or cancel it with `/cancel`',
    );
  }
  if (rules.cooldownMs && snap.userLastSubmitAt !== undefined) {
    const waitMs = snap.userLastSubmitAt + rules.cooldownMs - snap.now;
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw new QuotaExceededError(
        'cooldown',
        `please wait ${seconds} s before the next ${kind}`,
        undefined,
        seconds,
      );
    }
  }
  if (rules.dailyPerUser !== undefined && snap.userSubmittedToday >= rules.dailyPerUser) {
    throw new QuotaExceededError(
      'daily',
      `you reached today's limit of ${rules.dailyPerUser} ${kind} jobs`,
      'the limit resets at midnight UTC',
    );
  }
}

export function serverLimit(policy: QueuePolicy): number {
  return policy.maxActivePerServer ?? Math.max(1, Math.ceil(policy.maxQueued / 4));
}

/** The server a job was submitted from; undefined for operators' jobs (the CLI). */
export function serverOf(job: Pick<JobRecord, 'meta'>): string | undefined {
  return job.meta?.guildId || undefined;
}

/** Owners cancel their own jobs; admins cancel the jobs of their own server; operators any job. */
export function assertMayCancel(actor: Actor, job: Pick<JobRecord, 'id' | 'userId' | 'meta'>): void {
  if (actor.userId === job.userId) return;
  if (actor.isAdmin && (actor.guildId === undefined || actor.guildId === serverOf(job))) return;
  if (actor.isAdmin) {
    throw new NotAllowedError(
      `job ${job.id} belongs to another server`,
      "only its owner or that server's admins can cancel it",
    );
  }
  throw new NotAllowedError(
    `job ${job.id} is not yours to cancel`,
    'only its owner or an admin can cancel it',
  );
}

/** The UTC day a submission counts against, e.g. 2024-05-01. */
export function quotaDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}
