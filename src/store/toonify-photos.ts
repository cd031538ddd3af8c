// Members' photos for /toonify. The bot downloads each into a folder of its own, the worker reads it
// for that one job, and it is deleted when the job ends however it ends. An operator may keep them
// for FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS after their job (to look into a bad result): they wait in
// kept/ and a sweep deletes them. Nothing else reads this folder, so a photo never reaches a
// dataset, the model catalogue, a leaderboard or a contest. No TensorFlow.js here: the bot uses it.
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../errors.ts';

export const KEEP_PHOTOS_ENV = 'FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS';

const HOUR_MS = 3_600_000;
/**
 * A photo still waiting after a day belongs to a job that ended while neither the bot nor a worker
 * was watching (the bot restarted while it was queued): the sweep deletes it. A job really queued
 * that long then fails with "cannot read the photo", which is the lesser evil.
 */
export const ORPHAN_AFTER_MS = 24 * HOUR_MS;

/** Where the bot saves photos until their job ends. */
export function toonifyPhotosDir(dataDir: string): string {
  return join(resolve(dataDir), 'uploads', 'toonify');
}

function keptDir(dataDir: string): string {
  return join(toonifyPhotosDir(dataDir), 'kept');
}

/** What is wrong with a FACESTYLE_TOONIFY_KEEP_PHOTOS_HOURS value, or undefined when it is fine. */
export function photoRetentionProblem(raw: string | undefined): string | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const hours = Number(raw.trim());
  if (!Number.isFinite(hours) || hours < 0)
    return `${KEEP_PHOTOS_ENV} must be a number of hours of at least 0 (0 deletes photos as soon as their job ends), got "${raw}"`;
  return undefined;
}

/** How long photos are kept after their job, in ms (default 0: deleted at once); throws UserError. */
export function photoRetentionMs(env: Record<string, string | undefined> = process.env): number {
  const raw = env[KEEP_PHOTOS_ENV];
  const problem = photoRetentionProblem(raw);
  if (problem) throw new UserError(problem);
  return raw?.trim() ? Number(raw.trim()) * HOUR_MS : 0;
}

export interface PhotoPolicy {
  dataDir: string;
  /** 0: delete when the job ends. */
  retentionMs: number;
}

/**
 * Only photos the bot saved are ever deleted: a job submitted from the command line may name any
 * file of its author's, which must stay where it is.
 */
export function isUploadedPhoto(path: string, dataDir: string): boolean {
  return dirname(resolve(path)) === toonifyPhotosDir(dataDir);
}

export type PhotoRelease = 'deleted' | 'kept' | 'absent' | 'not-uploaded';

/**
 * The job of `path` ended: deletes the photo, or with a retention moves it to kept/ and restarts
 * its clock there. Idempotent: the worker and the bot both call it, whichever sees the end.
 */
export async function releasePhoto(path: string, policy: PhotoPolicy): Promise<PhotoRelease> {
  if (!isUploadedPhoto(path, policy.dataDir)) return 'not-uploaded';
  const exists = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) return 'absent';
  if (policy.retentionMs <= 0) {
    await rm(path, { force: true });
    return 'deleted';
  }
  const kept = join(keptDir(policy.dataDir), basename(path));
  await mkdir(dirname(kept), { recursive: true });
  try {
    await rename(path, kept);
  } catch (err) {
    // The other side released it first.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  const now = new Date();
  await utimes(kept, now, now);
  return 'kept';
}

async function filesIn(dir: string): Promise<Array<{ path: string; modifiedAt: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: Array<{ path: string; modifiedAt: number }> = [];
  for (const name of names) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile()) files.push({ path, modifiedAt: info.mtimeMs });
  }
  return files;
}

/**
 * Deletes kept photos older than the retention (all of them once it is 0 again) and photos whose
 * job ended unseen (see ORPHAN_AFTER_MS). Returns the paths deleted.
 */
export async function sweepPhotos(policy: PhotoPolicy, now = Date.now()): Promise<string[]> {
  const expired = [
    ...(await filesIn(keptDir(policy.dataDir))).filter((f) => now - f.modifiedAt >= policy.retentionMs),
    ...(await filesIn(toonifyPhotosDir(policy.dataDir))).filter((f) => now - f.modifiedAt >= ORPHAN_AFTER_MS),
  ];
  for (const file of expired) await rm(file.path, { force: true });
  return expired.map((f) => f.path);
}
