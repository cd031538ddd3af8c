// docker-compose.yml and the Dockerfile, read (no Docker engine runs here): NVIDIA's container
// conventions (no pinned Vulkan ICD path, one GPU per worker service by device_ids), no .env
// needed to build, a registration step, and Node 24 as CI tests it. The compose file is parsed by a
// small reader for the YAML it uses (block maps and sequences, flow sequences, quoted scalars).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../..');

type Yaml = string | boolean | Yaml[] | { [key: string]: Yaml };
type YamlMap = { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

/** Strips a comment that starts outside quotes. */
function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

function scalar(text: string): Yaml {
  const t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) {
    const inner = t.slice(1, -1).trim();
    return inner ? inner.split(',').map((item) => scalar(item)) : [];
  }
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  if (t === 'true' || t === 'false') return t === 'true';
  if (/^[&*!|>{]/.test(t)) throw new Error(`YAML feature outside this reader's subset: ${t}`);
  return t;
}

/** Parses the block starting at lines[start] (all at `indent`); returns the value and the next line. */
function block(lines: Line[], start: number, indent: number): [Yaml, number] {
  if (lines[start].text.startsWith('- ') || lines[start].text === '-') {
    const items: Yaml[] = [];
    let i = start;
    while (i < lines.length && lines[i].indent === indent && lines[i].text.startsWith('-')) {
      const rest = lines[i].text.slice(1).trimStart();
      if (/^[\w.-]+:(\s|$)/.test(rest)) {
        // "- key: value" opens a map whose keys sit two columns in.
        const inner: Line[] = [{ indent: indent + 2, text: rest, number: lines[i].number }];
        let j = i + 1;
        while (j < lines.length && lines[j].indent > indent) inner.push(lines[j++]);
        items.push(block(inner, 0, indent + 2)[0]);
        i = j;
      } else {
        items.push(scalar(rest));
        i++;
      }
    }
    return [items, i];
  }
  const map: YamlMap = {};
  let i = start;
  while (i < lines.length && lines[i].indent === indent) {
    const m = /^([\w.-]+):(?:\s+(.*))?$/.exec(lines[i].text);
    if (!m) throw new Error(`line ${lines[i].number}: cannot read "${lines[i].text}"`);
    const [, key, rest] = m;
    if (key in map) throw new Error(`line ${lines[i].number}: duplicate key ${key}`);
    if (rest !== undefined && rest !== '') {
      map[key] = scalar(rest);
      i++;
    } else if (i + 1 < lines.length && lines[i + 1].indent > indent) {
      [map[key], i] = block(lines, i + 1, lines[i + 1].indent);
    } else {
      map[key] = '';
      i++;
    }
  }
  if (i < lines.length && lines[i].indent > indent)
    throw new Error(`line ${lines[i].number}: unexpected indentation`);
  return [map, i];
}

function parseYamlSubset(text: string): YamlMap {
  const lines: Line[] = [];
  for (const [n, raw] of text.split('\n').entries()) {
    if (raw.includes('\t')) throw new Error(`line ${n + 1}: tab`);
    const line = withoutComment(raw).trimEnd();
    if (line.trim())
      lines.push({ indent: line.length - line.trimStart().length, text: line.trim(), number: n + 1 });
  }
  const [value, next] = block(lines, 0, 0);
  if (next !== lines.length) throw new Error(`line ${lines[next].number}: not read`);
  return value as YamlMap;
}

const composeText = readFileSync(join(REPO, 'docker-compose.yml'), 'utf8');
const compose = parseYamlSubset(composeText);
const services = compose.services as Record<string, YamlMap>;
const get = (value: Yaml | undefined, ...path: string[]): Yaml | undefined =>
  path.reduce<Yaml | undefined>(
    (v, key) => (v && typeof v === 'object' && !Array.isArray(v) ? v[key] : undefined),
    value,
  );
const commandOf = (service: YamlMap) => (service.command as string[] | undefined)?.[0];
const gpuDevices = (service: YamlMap) =>
  (get(service, 'deploy', 'resources', 'reservations', 'devices') as YamlMap[] | undefined) ?? [];

describe('the YAML subset reader', () => {
  it('reads maps, sequences, flow sequences, quotes and comments, and refuses what it does not know', () => {
    expect(
      parseYamlSubset('a:\n  b: "x # y"  # note\n  c: [1, "2"]\n  d:\n    - e: f\n      g: h\n    - i\n'),
    ).toEqual({ a: { b: 'x # y', c: ['1', '2'], d: [{ e: 'f', g: 'h' }, 'i'] } });
    expect(() => parseYamlSubset('a: &anchor\n  b: c\n')).toThrow(/subset/);
    expect(() => parseYamlSubset('a: 1\na: 2\n')).toThrow(/duplicate key a/);
  });
});

describe('docker-compose.yml', () => {
  const workers = Object.entries(services).filter(([, s]) => commandOf(s) === 'worker');

  it('pins no Vulkan ICD path: the NVIDIA toolkit mounts it where the loader looks', () => {
    for (const [name, service] of Object.entries(services)) {
      const environment = Object.keys((service.environment as YamlMap | undefined) ?? {});
      expect(
        environment.filter((key) => key.startsWith('VK_')),
        name,
      ).toEqual([]);
    }
  });

  it('runs one worker service per GPU, each reserving its own device_ids, with Vulkan graphics', () => {
    expect(workers.length).toBeGreaterThan(0);
    const ids: string[] = [];
    for (const [name, worker] of workers) {
      const devices = gpuDevices(worker);
      expect(devices, name).toHaveLength(1);
      expect(devices[0].driver).toBe('nvidia');
      expect(devices[0].count, `${name}: count gives every replica the same GPUs`).toBeUndefined();
      const deviceIds = devices[0].device_ids as string[];
      expect(deviceIds, name).toHaveLength(1);
      ids.push(...deviceIds);
      expect(devices[0].capabilities).toContain('gpu');
      const capabilities = String(get(worker, 'environment', 'NVIDIA_DRIVER_CAPABILITIES')).split(',');
      expect(capabilities).toEqual(expect.arrayContaining(['compute', 'utility', 'graphics']));
      expect(get(worker, 'deploy', 'replicas'), `${name}: replicas would share one GPU`).toBeUndefined();
    }
    expect(new Set(ids).size, 'two worker services on one GPU').toBe(ids.length);
  });

  it('needs no .env to build or to run the workers; only the bot and the registration read it', () => {
    expect(composeText, 'required variables fail every compose command, build included').not.toMatch(
      /\$\{[^}]*:\?/,
    );
    for (const [name, service] of Object.entries(services)) {
      for (const entry of (service.env_file as Yaml[] | undefined) ?? []) {
        expect(typeof entry, `${name}: env_file as a bare path is required`).toBe('object');
        expect((entry as YamlMap).required, name).toBe(false);
        expect(['bot', 'register']).toContain(commandOf(service));
      }
    }
    for (const [name, worker] of workers) {
      expect(worker.env_file, name).toBeUndefined();
      expect(JSON.stringify(worker), `${name} must not see the Discord token`).not.toMatch(/DISCORD_TOKEN/);
    }
  });

  it('has a registration step that `up` does not start', () => {
    const register = Object.entries(services).filter(([, s]) => commandOf(s) === 'register');
    expect(register).toHaveLength(1);
    const [, service] = register[0];
    expect(service.profiles, 'without a profile, `up` would register at every start').toBeDefined();
    expect(composeText).toMatch(/docker compose run --rm register/);
  });

  it('points the bot and every worker at the same queue and data volume; the bot forks no worker', () => {
    const bot = Object.values(services).find((s) => commandOf(s) === 'bot') as YamlMap;
    expect(get(bot, 'environment', 'FACESTYLE_LOCAL_WORKERS')).toBe('0');
    const queue = get(bot, 'environment', 'FACESTYLE_QUEUE_URL');
    expect(queue).toMatch(/^redis:\/\/redis:6379$/);
    expect(services.redis).toBeDefined();
    for (const [name, worker] of workers) {
      expect(get(worker, 'environment', 'FACESTYLE_QUEUE_URL'), name).toBe(queue);
      expect(worker.volumes, name).toEqual(expect.arrayContaining(['data:/data']));
    }
    expect(bot.volumes).toEqual(expect.arrayContaining(['data:/data']));
  });
});

describe('Dockerfile and engines', () => {
  const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string } };

  it('builds on Node 24 LTS, the Node CI tests besides 20, with the npm settings of the repository', () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    for (const image of froms) expect(image).toMatch(/^node:24-/);
    expect(dockerfile).toMatch(/COPY package\.json package-lock\.json \.npmrc/);
    expect(dockerfile).not.toMatch(/^ENV .*VK_/m);
    expect(pkg.engines.node).toMatch(/>=24|\^24/);
    expect(readFileSync(join(REPO, '.ci/run'), 'utf8')).toMatch(/bash \.ci\/node24\.sh/);
  });

  it('keeps the secrets and local state out of the image', () => {
    const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['.env', 'node_modules', 'data', '.git']) expect(ignored).toContain(entry);
  });
});
