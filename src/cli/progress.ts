// Progress for long CLI batches: a live cli-progress bar on a terminal, and a plain line about every
// 10% when stderr is a file or a pipe (CI logs, `2> log.txt`), where redraws would only add noise.
import cliProgress from 'cli-progress';

/** Extra values shown after the bar, e.g. `{ loss: 0.42 }`. */
export type ProgressDetails = Record<string, string | number>;

export interface Progress {
  update(done: number, details?: ProgressDetails): void;
  increment(by?: number, details?: ProgressDetails): void;
  /** Finishes the bar (or prints the last line); safe to call more than once. */
  stop(): void;
}

export interface ProgressOptions {
  /** Default: process.stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Force the live bar (true) or the line mode (false); default: whether the stream is a TTY. */
  interactive?: boolean;
}

const LINE_STEP = 0.1;

export function createProgress(label: string, total: number, options: ProgressOptions = {}): Progress {
  if (!(Number.isFinite(total) && total >= 0)) throw new Error(`progress total must be >= 0, got ${total}`);
  const stream = options.stream ?? process.stderr;
  const interactive = options.interactive ?? Boolean(stream.isTTY);
  return interactive ? barProgress(label, total, stream) : lineProgress(label, total, stream);
}

/** cli-progress redraws from a timer; an unref'd timer lets the CLI exit after an error left it running. */
class UnrefSingleBar extends cliProgress.SingleBar {
  override render(): void {
    super.render();
    (this as unknown as { timer?: NodeJS.Timeout | null }).timer?.unref();
  }
}

function barProgress(label: string, total: number, stream: NodeJS.WritableStream): Progress {
  const bar = new UnrefSingleBar({
    // Braces in a label would be read as cli-progress tokens.
    format: `${label.replace(/[{}]/g, '')} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}, ETA {eta_formatted}{details}`,
    stream,
    // Without this, cli-progress draws nothing on streams it does not consider TTYs.
    noTTYOutput: true,
    barsize: 30,
  });
  bar.start(total, 0, { details: '' });
  let done = 0;
  let stopped = false;
  const update = (value: number, details?: ProgressDetails) => {
    done = value;
    bar.update(value, details ? { details: formatDetails(details) } : {});
  };
  return {
    update,
    increment: (by = 1, details) => update(done + by, details),
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

function lineProgress(label: string, total: number, stream: NodeJS.WritableStream): Progress {
  const started = Date.now();
  let done = 0;
  let lastDetails = '';
  let printedStep = 0;
  let printedDone = -1;
  let stopped = false;
  const print = () => {
    printedDone = done;
    const elapsed = (Date.now() - started) / 1000;
    const percent = total > 0 ? Math.floor((100 * done) / total) : 100;
    const eta = done > 0 && done < total ? `, ETA ${formatSeconds((elapsed * (total - done)) / done)}` : '';
    stream.write(
      `${label}: ${percent}% (${done}/${total}), ${formatSeconds(elapsed)} elapsed${eta}${lastDetails}\n`,
    );
  };
  const update = (value: number, details?: ProgressDetails) => {
    if (stopped) return;
    done = value;
    if (details) lastDetails = formatDetails(details);
    const step = total > 0 ? Math.floor(done / total / LINE_STEP) : 0;
    if (step > printedStep) {
      printedStep = step;
      print();
    }
  };
  return {
    update,
    increment: (by = 1, details) => update(done + by, details),
    stop() {
      if (stopped) return;
      stopped = true;
      if (printedDone !== done) print();
    },
  };
}

function formatDetails(details: ProgressDetails): string {
  const parts = Object.entries(details).map(([key, value]) => `${key} ${value}`);
  return parts.length > 0 ? ` | ${parts.join(', ')}` : '';
}

function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}
