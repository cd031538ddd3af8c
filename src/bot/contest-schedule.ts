// The contest's cron schedule, kept apart from the announcer so that reading the configuration
// loads node-cron only. Schedules are in UTC, so every bot process agrees on the periods.
import cron from 'node-cron';

/** Mondays at 12:00 UTC. */
export const DEFAULT_CONTEST_SCHEDULE = '0 12 * * 1';
export const CONTEST_TIMEZONE = 'Etc/UTC';

/** What is wrong with a contest schedule, or undefined when it is usable. */
export function contestScheduleProblem(expression: string): string | undefined {
  const example = `e.g. "${DEFAULT_CONTEST_SCHEDULE}" = Mondays 12:00 UTC, or "off"`;
  if (!cron.validate(expression))
    return `FACESTYLE_CONTEST_CRON "${expression}" is not a cron expression; ${example}`;
  // Periods are counted in whole minutes from one run to the previous one.
  const seconds = cron.parse(expression).second;
  if (seconds.length !== 1 || seconds[0] !== 0)
    return `FACESTYLE_CONTEST_CRON "${expression}" has a seconds field; use five fields (minute hour day month weekday), ${example}`;
  return undefined;
}

/** When a contest schedule next fires. */
export function nextContestRun(expression: string): Date | undefined {
  const task = cron.createTask(expression, () => {}, { timezone: CONTEST_TIMEZONE });
  try {
    // getNextRun answers null for a task that is not running; getNextRuns reads the pattern alone.
    return task.getNextRuns(1)[0];
  } finally {
    void task.destroy();
  }
}
