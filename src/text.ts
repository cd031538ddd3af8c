// Counted words for messages people read ("1 vote", "3 votes"): one spelling for the bot, the CLI
// and the errors of every layer.

/** "1 vote", "2 votes": `word` with an English plural -s unless `n` is 1. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
