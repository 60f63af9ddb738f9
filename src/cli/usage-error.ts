/** A mistake in how a command was called: its message is printed as it is and the exit code is 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
