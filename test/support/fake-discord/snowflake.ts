// Discord ids: milliseconds since the Discord epoch in the high bits, a counter in the low ones, so
// ids made by the fake sort by creation time like real ones.
const DISCORD_EPOCH = 1_420_070_400_000n;
let counter = 0n;

export function snowflake(at = Date.now()): string {
  counter = (counter + 1n) & 0xfffn;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | counter).toString();
}

/** The creation time Discord encodes in an id. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> 22n) + DISCORD_EPOCH);
}
