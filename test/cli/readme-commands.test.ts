// Every command line of the README's "Command line" section, run as written (through `npx`) in a
// temporary copy of the repository with the shipped checkpoints, in order: a README line that no
// longer runs fails here. Fast variants by default (fewer projection steps and epochs, shorter
// benchmarks); FACESTYLE_README_FULL=1 runs the lines exactly. Lines that need a service this
// suite does not provide are skipped with their reason.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const execFileAsync = promisify(execFile);
const REPO = join(import.meta.dirname, '../..');
const FULL = process.env.FACESTYLE_README_FULL === '1';

/** The lines of the first ```sh block under `heading`, continuation lines joined, comments cut. */
function commandLines(markdown: string, heading: string): string[] {
  const section = markdown.slice(markdown.indexOf(`\n${heading}\n`));
  if (section.length === markdown.length + 1) throw new Error(`no "${heading}" section`);
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error(`no sh block under "${heading}"`);
  return block[1]
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line && !line.startsWith('#'));
}

/** Why a line cannot run here, or null. */
function skipReason(line: string): string | null {
  if (/\bfacestyle worker\b/.test(line)) return 'needs Redis (a worker serves the BullMQ queue only)';
  if (/\bfacestyle (bot|register)\b/.test(line)) return 'needs a Discord token';
  return null;
}

/** The line with its slow counts made small, unless FACESTYLE_README_FULL=1. */
function fastVariant(line: string): string {
  if (FULL) return line;
  return line
    .replace(/--steps \d+/, '--steps 2')
    .replace(/--epochs \d+/, '--epochs 1')
    .replace(/--seconds \d+(\.\d+)?/, '--seconds 0.2');
}

const lines = commandLines(readFileSync(join(REPO, 'README.md'), 'utf8'), '## Command line');

let clone: string;
beforeAll(async () => {
  clone = await mkdtemp(join(tmpdir(), 'facestyle-readme-'));
  for (const entry of ['bin', 'src', 'checkpoints', 'package.json', 'tsconfig.json', '.npmrc']) {
    if (existsSync(join(REPO, entry))) await cp(join(REPO, entry), join(clone, entry), { recursive: true });
  }
  await symlink(realpathSync(join(REPO, 'node_modules')), join(clone, 'node_modules'));
});
afterAll(async () => {
  await rm(clone, { recursive: true, force: true });
});

describe("the README's command lines", () => {
  it('has command lines to run, each a facestyle command or a benchmark', () => {
    expect(lines.length).toBeGreaterThan(8);
    for (const line of lines) expect(line).toMatch(/^(npx facestyle|npm run bench --) /);
  });

  for (const line of lines) {
    const reason = skipReason(line);
    it.skipIf(reason !== null)(`${line}${reason ? ` (skipped: ${reason})` : ''}`, async () => {
      const command = fastVariant(line);
      const env: NodeJS.ProcessEnv = { ...process.env, FACESTYLE_DATA_DIR: '', FACESTYLE_DEFAULT_MODEL: '' };
      delete env.FACESTYLE_QUEUE_URL;
      let result: { stdout: string; stderr: string };
      try {
        result = await execFileAsync('bash', ['-c', command], {
          cwd: clone,
          env,
          timeout: 300_000,
          maxBuffer: 32 * 2 ** 20,
        });
      } catch (err) {
        const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
        throw new Error(`"${command}" exited with ${code}\n${stdout}\n${stderr}`);
      }
      // What it says it wrote is there.
      const out = /--out (\S+)/.exec(command)?.[1];
      if (out) expect(existsSync(join(clone, out)), `${out} after "${command}"\n${result.stderr}`).toBe(true);
    });
  }
});
