import { describe, expect, it } from 'vitest';
import { NotAllowedError, QueueFullError, QuotaExceededError } from '../../src/jobs/errors.ts';
import {
  assertMayCancel,
  checkSubmit,
  type QueuePolicy,
  quotaDay,
  type SubmitSnapshot,
} from '../../src/jobs/policy.ts';
import type { Actor } from '../../src/jobs/types.ts';

const policy: QueuePolicy = {
  maxQueued: 10,
  maxActivePerUser: 3,
  kinds: { generate: { cooldownMs: 5_000, dailyPerUser: 4 }, finetune: { maxActivePerUser: 1 } },
};
const now = Date.UTC(2024, 4, 1, 12);
const idle: SubmitSnapshot = {
  queuedTotal: 0,
  userActive: 0,
  userActiveOfKind: 0,
  userSubmittedToday: 0,
  now,
};
const user = { userId: 'u1' };

function refusal(kind: string, snapshot: Partial<SubmitSnapshot>, actor: Actor = user): unknown {
  try {
    checkSubmit(policy, kind, actor, { ...idle, ...snapshot });
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('checkSubmit', () => {
  it('accepts a submission within every limit', () => {
    expect(
      refusal('generate', { userActive: 2, userLastSubmitAt: now - 5_000, userSubmittedToday: 3 }),
    ).toBeUndefined();
  });

  it('refuses once the queue holds maxQueued jobs, admins included', () => {
    expect(refusal('generate', { queuedTotal: 10 })).toBeInstanceOf(QueueFullError);
    expect(refusal('generate', { queuedTotal: 10 }, { userId: 'a', isAdmin: true })).toBeInstanceOf(
      QueueFullError,
    );
    expect(refusal('generate', { queuedTotal: 9 })).toBeUndefined();
  });

  it('limits active jobs per user overall and per kind', () => {
    const overall = refusal('generate', { userActive: 3 }) as QuotaExceededError;
    expect(overall).toBeInstanceOf(QuotaExceededError);
    expect(overall.rule).toBe('active');
    expect(overall.message).toMatch(/3 jobs queued or running \(limit 3\)/);
    const perKind = refusal('finetune', { userActive: 1, userActiveOfKind: 1 }) as QuotaExceededError;
    expect(perKind.message).toMatch(/1 finetune job queued or running \(limit 1\)/);
    expect(refusal('generate', { userActive: 1, userActiveOfKind: 1 })).toBeUndefined();
  });

  it('enforces the cooldown with the seconds left', () => {
    const cooldown = refusal('generate', { userLastSubmitAt: now - 1_200 }) as QuotaExceededError;
    expect(cooldown.rule).toBe('cooldown');
    expect(cooldown.retryAfterSeconds).toBe(4);
    expect(cooldown.message).toBe('please wait 4 s before the next generate');
    expect(refusal('blend', { userLastSubmitAt: now - 10 })).toBeUndefined();
  });

  it('enforces the daily limit per kind', () => {
    const daily = refusal('generate', { userSubmittedToday: 4 }) as QuotaExceededError;
    expect(daily.rule).toBe('daily');
    expect(daily.hint).toMatch(/midnight UTC/);
  });

  it("names the user's own limit before the server's cap and the full queue", () => {
    const member = { userId: 'u1', guildId: 'A' };
    const everything = { queuedTotal: 10, serverActive: 9, userLastSubmitAt: now - 1_000 };
    expect((refusal('generate', everything, member) as QuotaExceededError).rule).toBe('cooldown');
    expect((refusal('blend', everything, member) as QuotaExceededError).rule).toBe('server');
    expect(refusal('blend', { ...everything, serverActive: 0 }, member)).toBeInstanceOf(QueueFullError);
  });

  it('lets admins past per-user limits', () => {
    const admin = { userId: 'root', isAdmin: true };
    expect(
      refusal('generate', { userActive: 50, userLastSubmitAt: now, userSubmittedToday: 99 }, admin),
    ).toBeUndefined();
  });

  it("holds a server's admins and members to the server's cap, a quarter of the queue by default", () => {
    const admin = { userId: 'root', guildId: 'A', isAdmin: true };
    const capped = refusal('generate', { serverActive: 3 }, admin) as QuotaExceededError;
    expect(capped).toBeInstanceOf(QuotaExceededError);
    expect(capped.rule).toBe('server');
    expect(capped.message).toBe('this server already has 3 jobs queued or running (limit 3)');
    expect(refusal('generate', { serverActive: 2, userActive: 50 }, admin)).toBeUndefined();
    expect(refusal('generate', { serverActive: 3 }, { userId: 'u1', guildId: 'A' })).toBeInstanceOf(
      QuotaExceededError,
    );
    const explicit = { ...policy, maxActivePerServer: 5 };
    expect(() => checkSubmit(explicit, 'generate', admin, { ...idle, serverActive: 4 })).not.toThrow();
    expect(() => checkSubmit(explicit, 'generate', admin, { ...idle, serverActive: 5 })).toThrow(/limit 5/);
    // Operators (the CLI) have no server: only the global cap holds them.
    expect(refusal('generate', { serverActive: 99 }, { userId: 'op', isAdmin: true })).toBeUndefined();
  });
});

describe('assertMayCancel', () => {
  const job = { id: 'j1', userId: 'u1', meta: { guildId: 'A' } };

  it("allows the owner, the admins of the job's server and operators, refuses anyone else", () => {
    expect(() => assertMayCancel({ userId: 'u1' }, job)).not.toThrow();
    expect(() => assertMayCancel({ userId: 'u1', guildId: 'B' }, job)).not.toThrow();
    expect(() => assertMayCancel({ userId: 'root', guildId: 'A', isAdmin: true }, job)).not.toThrow();
    expect(() => assertMayCancel({ userId: 'operator', isAdmin: true }, job)).not.toThrow();
    expect(() => assertMayCancel({ userId: 'u2', guildId: 'A' }, job)).toThrow(NotAllowedError);
  });

  it("refuses an admin of another server, whatever the command's server", () => {
    expect(() => assertMayCancel({ userId: 'root', guildId: 'B', isAdmin: true }, job)).toThrow(
      'job j1 belongs to another server',
    );
    // An operator's job (no server) is no server admin's to cancel.
    const operatorJob = { id: 'j2', userId: 'op', meta: {} };
    expect(() => assertMayCancel({ userId: 'root', guildId: 'A', isAdmin: true }, operatorJob)).toThrow(
      NotAllowedError,
    );
  });
});

describe('quotaDay', () => {
  it('is the UTC date', () => {
    expect(quotaDay(Date.UTC(2024, 0, 31, 23, 59))).toBe('2024-01-31');
    expect(quotaDay(Date.UTC(2024, 1, 1, 0, 0))).toBe('2024-02-01');
  });
});
