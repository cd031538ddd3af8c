// One import for `npm run bench -- import`, in a process of its own so that its peak RSS is the
// import's alone. Started by src/bench/import.ts with the job as JSON in argv[2]; sends the
// importer's report and the process's peak RSS back over IPC.
import { readFileSync } from 'node:fs';
import { initBackend } from '../model/backend.ts';
import type { ConfigHints } from '../model/checkpoint/io.ts';
import { type ImportReport, importWeights } from '../model/import/importer.ts';

export interface ImportJob {
  source: string;
  out: string;
  backend: string;
  hints: ConfigHints;
}

export interface ImportJobResult {
  report: ImportReport;
  /** Peak RSS once the backend had started, before the import (KiB). */
  startRssKiB: number;
  /** Peak RSS after the import (KiB). */
  peakRssKiB: number;
}

/**
 * This process's peak resident set (KiB): VmHWM where /proc has it, since on Linux getrusage's
 * maxRSS (process.resourceUsage) carries the parent's peak over fork and exec.
 */
function peakRssKiB(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // No /proc: fall back to getrusage.
  }
  return process.resourceUsage().maxRSS;
}

const job = JSON.parse(process.argv[2]) as ImportJob;
await initBackend(job.backend);
const startRssKiB = peakRssKiB();
const report = await importWeights(job.source, { out: job.out, hints: job.hints });
const result: ImportJobResult = { report, startRssKiB, peakRssKiB: peakRssKiB() };
process.send?.(result, () => process.exit(0));
