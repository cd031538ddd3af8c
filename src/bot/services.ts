// What the bot needs from the rest of facestyle, as narrow interfaces: the job queue (a subset of
// src/jobs JobQueue, so the real queue fits as is), the model catalogue, dataset intake and votes.
// Commands see nothing else, which keeps them testable and the wiring in one place.
import type { JobKinds } from '../jobs/kinds.ts';
import type { JobQueue } from '../jobs/types.ts';
import type { VoteStore } from '../store/votes.ts';

/** The job queue as the bot uses it. `createJobQueue()`'s queue satisfies it. */
export type BotJobs = Pick<
  JobQueue<JobKinds>,
  'submit' | 'admit' | 'get' | 'list' | 'cancel' | 'subscribe' | 'stats'
>;

export type ModelKind = 'base' | 'finetuned' | 'blend';

export interface ModelSummary {
  /** What members type in `model:` options. */
  name: string;
  kind: ModelKind;
  /** Output resolution in pixels. */
  resolution: number;
  /** The model a fine-tune or blend started from. */
  parent?: string;
  /** Epochs with a saved snapshot (fine-tunes), oldest first. */
  snapshots?: number[];
  /** The best-scored snapshot's epoch (fine-tunes whose snapshots were scored). */
  bestEpoch?: number;
  /** KID against the training images: the best snapshot's, or the model's own. */
  score?: { metric: string; kid: number; kidStd: number };
  /** One line for /models. */
  description?: string;
  createdAt?: number;
}

export interface ModelCatalog {
  list(): Promise<ModelSummary[]>;
  /** The model /generate uses when none is named; undefined while no model is installed. */
  defaultModel(): Promise<string | undefined>;
  /**
   * The checkpoint reference a job payload takes for a fine-tune's snapshot at `epoch` (the latest
   * when absent); throws a `UserError` naming the epochs that exist.
   */
  snapshot(model: string, epoch?: number): Promise<string>;
  /** A new, empty folder for the snapshots of a fine-tune called `name`; `UserError` if taken. */
  reserveRunDir(name: string): Promise<string>;
}

export type DatasetAlign = 'auto' | 'faces' | 'center';

export interface ImportedDataset {
  /** Prepared dataset folder, what FinetunePayload.datasetDir takes. */
  datasetDir: string;
  /** Usable face images in it. */
  images: number;
  /** Entries skipped (not an image, no face, duplicate), for the summary. */
  skipped: number;
  /** How the kept images were cropped: on a detected face, or centred. */
  keptBy?: { faces: number; center: number };
  /** Why entries were skipped, in words ("no face found: 2, duplicates: 1"). */
  notUsed?: string;
  /** The alignment asked for. */
  align?: DatasetAlign;
  /** A PNG of the kept faces, for the admin to check before the training starts. */
  contactSheet?: string;
}

export interface ImportOptions {
  name: string;
  /** Side of the training images: the base model's resolution. */
  resolution: number;
  /** Default auto: aligned where a face is detected, centre-cropped otherwise. */
  align?: DatasetAlign;
  /** The admin who uploaded it (the owner of the dataset job). */
  ownerId: string;
  /** Where the job belongs (guild, channel), as for any job. */
  meta?: Record<string, string>;
  onProgress?: (fraction: number, stage: string) => void;
}

export interface DatasetIntake {
  /** Checks, unpacks and aligns an uploaded archive; throws `UserError`s a member can act on. */
  importArchive(archivePath: string, options: ImportOptions): Promise<ImportedDataset>;
}

export interface BotServices {
  jobs: BotJobs;
  models: ModelCatalog;
  datasets: DatasetIntake;
  votes: VoteStore;
}
