import { UserError } from '../errors.ts';
import type { DatasetReport } from './types.ts';

/**
 * A dataset that cannot be built from this input: a hostile or broken archive, or too few usable
 * images. When the build got as far as writing its report, `report` holds it, so the caller can
 * still show the contact sheet and counts.
 */
export class DatasetError extends UserError {
  override name = 'DatasetError';
  constructor(
    message: string,
    hint?: string,
    readonly report?: DatasetReport,
  ) {
    super(message, hint);
  }
}
