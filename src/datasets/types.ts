// The shapes shared by the ingest pipeline: what a build is asked for, what it records per
// source entry, and what it hands back.

/** Bounds on what reading an archive may cost (defaults and checks in limits.ts). */
export interface ArchiveLimits {
  /** Entries in the archive or folder, directories included. */
  maxEntries: number;
  /** Uncompressed bytes of all entries together. */
  maxTotalBytes: number;
  /** Uncompressed bytes of one entry. */
  maxFileBytes: number;
  /** Uncompressed / compressed size of an entry (zip) or of the whole stream (tar.gz). */
  maxCompressionRatio: number;
  /** Width x height of one image, checked from its header before decoding. */
  maxPixels: number;
}

/**
 * faces: FFHQ alignment of a detected face (photos); center: a centre crop (framed art);
 * auto: faces where the detector finds one, a centre crop for the rest (cartoon and anime sets,
 * where a photo-trained detector misses most faces).
 */
export type AlignMode = 'auto' | 'faces' | 'center';
export const ALIGN_MODES: readonly AlignMode[] = ['auto', 'faces', 'center'];
export type MultipleFacesPolicy = 'largest' | 'all' | 'skip';

/**
 * The outcome of one source entry (or, for `multipleFaces: 'all'`, of one face in it).
 * Only `kept` produces a training image.
 */
export const ENTRY_STATUSES = [
  'kept',
  'no-face',
  'several-faces',
  'too-small',
  'duplicate',
  'unreadable',
  'not-an-image',
  'too-large',
  'unsafe-path',
  'link',
  'nested-archive',
  'encrypted',
  'suspicious-compression',
] as const;
export type EntryStatus = (typeof ENTRY_STATUSES)[number];
/** Statuses decided from the archive entry alone, before its bytes are decoded. */
export type SkipStatus = Exclude<
  EntryStatus,
  'kept' | 'no-face' | 'several-faces' | 'too-small' | 'duplicate'
>;

/** Output pixel centre (u + 0.5, v + 0.5) maps to source point (a·u' + b·v' + c, d·u' + e·v' + f). */
export type AffineMatrix = [a: number, b: number, c: number, d: number, e: number, f: number];
export type Point = [x: number, y: number];

export type Transform =
  | {
      kind: 'ffhq';
      /** Crop corners in source pixels: top-left, bottom-left, bottom-right, top-right (FFHQ order). */
      quad: [Point, Point, Point, Point];
      /** Output -> source, in the EXIF-oriented source frame. */
      affine: AffineMatrix;
    }
  | {
      kind: 'center';
      crop: { left: number; top: number; size: number };
      affine: AffineMatrix;
    };

export interface FaceInfo {
  /** Index among the faces found in the source image, largest first. */
  index: number;
  count: number;
  score: number;
  /** Side of the FFHQ crop square in source pixels: the face size the too-small test uses. */
  cropSize: number;
}

export interface ManifestEntry {
  /** Entry name inside the archive (or path relative to the input folder). */
  source: string;
  status: EntryStatus;
  /** Why it was not kept, in words. */
  reason?: string;
  /** Output file relative to the dataset folder (`images/000123.png`), for kept entries. */
  file?: string;
  /** For duplicates: the kept file it repeats. */
  duplicateOf?: string;
  face?: FaceInfo;
  transform?: Transform;
  /** 64-bit perceptual hash (dHash) of the output, hex. */
  hash?: string;
  sourceSize?: { width: number; height: number };
}

export type StatusCounts = Record<EntryStatus, number>;

export interface DatasetStats {
  key: string;
  resolution: number;
  align: AlignMode;
  multipleFaces: MultipleFacesPolicy;
  /** Entries read from the input (directories and OS metadata files not counted). */
  sources: number;
  kept: number;
  counts: StatusCounts;
  /** Kept images shown on the contact sheet (the first ones, up to a cap). */
  contactSheetImages: number;
  /** Kept images by how they were cropped: on a detected face, or centred (absent in old builds). */
  keptBy?: { faces: number; center: number };
  seconds: number;
  /** Source entries handled per second, whatever their outcome. */
  entriesPerSecond: number;
  startedAt: string;
  finishedAt: string;
}

export interface DatasetReport extends DatasetStats {
  outDir: string;
  /** True when an earlier build of the same input and options was returned without work. */
  reused: boolean;
  /** False for a build refused for too few images: nothing of it is at `outDir`. */
  published?: boolean;
  entries: ManifestEntry[];
  /** Absolute path of the contact sheet, or null when nothing was kept. */
  contactSheet: string | null;
  manifestPath: string;
  statsPath: string;
}

export interface DatasetProgress {
  /** Source entries handled so far. */
  done: number;
  /** Entries in the input when known up front (zip, folder); null for a streamed tar. */
  total: number | null;
  kept: number;
  entry: string;
  status: EntryStatus;
}

export interface BuildDatasetOptions {
  /** A .zip, .tar.gz / .tgz / .tar file, or a folder of images. */
  input: string;
  /** Dataset folder to create; its parent must exist. */
  outDir: string;
  /** Output side in pixels (the model resolution). */
  resolution: number;
  align: AlignMode;
  /** Refuse (DatasetError, report still written) with fewer usable images. Default 1. */
  minImages?: number;
  /** What to do with an image showing several faces. Default 'largest'. */
  multipleFaces?: MultipleFacesPolicy;
  /**
   * Smallest accepted face: side of its FFHQ crop square (centre mode: the shorter image side)
   * in source pixels, as a fraction of `resolution`. Default 0.5 (at most 2x upscaling).
   */
  minFaceSize?: number;
  /** Outputs whose dHashes differ in at most this many of 64 bits are duplicates. Default 6. */
  duplicateDistance?: number;
  /** Minimum detector confidence for a face. Default 0.5. */
  minFaceScore?: number;
  limits?: Partial<ArchiveLimits>;
  onProgress?: (progress: DatasetProgress) => void;
}
