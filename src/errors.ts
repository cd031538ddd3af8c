// Errors a user can act on carry a message meant for them (Discord reply, CLI stderr); anything
// else is a bug or an operator problem and goes to the log with its stack.

export class UserError extends Error {
  override name = 'UserError';
  constructor(
    message: string,
    /** What to do about it, shown under the message. */
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}
