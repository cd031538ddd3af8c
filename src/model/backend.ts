// Chooses and starts the TensorFlow.js backend every tensor of the process runs on. Each backend
// module is imported only when asked for: Dawn's native addon and the wasm binary cost time and
// memory, and tfjs-node is not even a dependency.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { UserError } from '../errors.ts';
import { logger } from '../log.ts';
import { plural } from '../text.ts';
import { type Tensor, tf } from './tf.ts';

export const BACKEND_NAMES = ['auto', 'webgpu', 'wasm', 'cpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation of Vulkan (lavapipe, SwiftShader): correct but slower than wasm. */
  isSoftware: boolean;
  features: string[];
}

export interface BackendInfo {
  name: ConcreteBackendName;
  requested: BackendName;
  adapter?: GpuAdapterSummary;
  /** One line for operators: what runs the tensors, and for `auto`, why the faster ones were skipped. */
  detail: string;
}

/** A backend that was asked for and cannot start; the hint says what to install or set. */
export class BackendError extends UserError {
  override name = 'BackendError';
}

const log = logger('backend');

const HINTS = {
  webgpu:
    'install libvulkan1 and a Vulkan driver (the NVIDIA driver, or Mesa >= 24 lavapipe for a CPU-only ' +
    'machine: bash .ci/install-lavapipe.sh); set VK_DRIVER_FILES=<path>/nvidia_icd.json (or lvp_icd.json) ' +
    'where the Vulkan loader does not find the driver; or use --backend wasm',
  wasm: 'reinstall the dependencies (npm ci): @tensorflow/tfjs-backend-wasm and its dist/*.wasm files are missing or broken',
  tensorflow:
    'npm install @tensorflow/tfjs-node-gpu (needs CUDA 11.2 and cuDNN 8.1) or @tensorflow/tfjs-node, ' +
    'at the same version as @tensorflow/tfjs-core; or use --backend webgpu / wasm',
} as const;

// tfjs-node-gpu first: where both are installed the GPU build is the one the operator wanted.
const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];

const requireHere = createRequire(import.meta.url);

export function parseBackendName(value: string): BackendName {
  const name = value.trim().toLowerCase();
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new BackendError(`unknown backend "${value}"`, `use one of: ${BACKEND_NAMES.join(', ')}`);
}

/** The backend tensors currently run on, or 'none' before any was started. */
export function backendName(): string {
  return tf.getBackend() ?? 'none';
}

/** Reads a tensor without blocking: webgpu in Node cannot read synchronously (dataSync throws). */
export async function readTensor(t: Tensor): Promise<Float32Array> {
  const data = await t.data();
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}

interface StartedBackend {
  adapter?: GpuAdapterSummary;
  detail: string;
}

const infoByRequest = new Map<BackendName, BackendInfo>();
const startByBackend = new Map<ConcreteBackendName, Promise<StartedBackend>>();
// Backend switches are process-global: run one initBackend at a time so two callers cannot
// interleave setBackend calls and each end up on the other's backend.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Starts (once) and selects the requested backend; `auto` picks the fastest that works:
 * tensorflow > webgpu on a hardware GPU > wasm > cpu. Throws BackendError when an explicitly
 * requested backend cannot start.
 */
export function initBackend(
  requested: BackendName | string = process.env.FACESTYLE_BACKEND || 'auto',
): Promise<BackendInfo> {
  const run = queue.then(() => initSerialized(requested));
  queue = run.catch(() => undefined);
  return run;
}

async function initSerialized(requestedRaw: string): Promise<BackendInfo> {
  const requested = parseBackendName(requestedRaw);
  const cached = infoByRequest.get(requested);
  if (cached) {
    await selectStarted(cached.name);
    return cached;
  }
  const startedAt = performance.now();
  const info =
    requested === 'auto'
      ? await chooseAutomatically()
      : { requested, name: requested, ...(await start(requested)) };
  await selectStarted(info.name);
  infoByRequest.set(requested, info);
  log.info(`backend ${info.name} (${info.detail})`, {
    requested,
    ms: Math.round(performance.now() - startedAt),
  });
  return info;
}

async function chooseAutomatically(): Promise<BackendInfo> {
  const skipped: string[] = [];
  const skip = (name: string, err: unknown) => {
    skipped.push(`${name}: ${errorText(err)}`);
    log.debug(`auto skips ${name}`, { reason: errorText(err) });
  };
  const chosen = (name: ConcreteBackendName, started: StartedBackend): BackendInfo => ({
    requested: 'auto',
    name,
    ...started,
    detail: skipped.length ? `${started.detail}; auto skipped ${skipped.join('; ')}` : started.detail,
  });

  for (const name of ['tensorflow', 'webgpu', 'wasm'] as const) {
    try {
      if (name === 'webgpu') {
        const { summary } = await probeWebGpuForAuto();
        if (summary.isSoftware) {
          skip(name, `software adapter ${summary.device} (slower than wasm)`);
          continue;
        }
      }
      return chosen(name, await start(name));
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      skip(name, err);
    }
  }
  return chosen('cpu', await start('cpu'));
}

function start(name: ConcreteBackendName): Promise<StartedBackend> {
  let started = startByBackend.get(name);
  if (!started) {
    // Failures are kept too: a backend that could not start will not start on a second try, and
    // `auto` after an explicit request should not pay for the probe again.
    const starter = { cpu: startCpu, wasm: startWasm, webgpu: startWebGpu, tensorflow: startTensorflow }[
      name
    ];
    // Starting a backend runs native code against drivers and files on the machine: whatever
    // goes wrong there is the operator's to fix, and `auto` moves on to the next backend.
    started = starter().catch((err: unknown) => {
      throw asBackendError(name, err);
    });
    started.catch(() => undefined);
    startByBackend.set(name, started);
  }
  return started;
}

async function selectStarted(name: ConcreteBackendName): Promise<void> {
  if (tf.getBackend() === name) return;
  if (!(await tf.setBackend(name)) || tf.getBackend() !== name) {
    throw new BackendError(`backend ${name} started but TensorFlow.js could not select it`);
  }
}

/**
 * Creates the backend that an imported module registered and hands tfjs that very instance.
 * tfjs's own setBackend only returns false on a failed start (and logs nothing with PROD set);
 * calling the factory here lets the real reason reach the user.
 */
async function createRegistered(name: ConcreteBackendName, hint: string): Promise<void> {
  const factory = tf.findBackendFactory(name);
  if (!factory) {
    throw new BackendError(
      `the ${name} backend module loaded but registered no "${name}" backend with this process's TensorFlow.js`,
      hint,
    );
  }
  let instance: tf.KernelBackend;
  try {
    instance = await factory();
  } catch (err) {
    throw new BackendError(`the ${name} backend failed to start: ${errorText(err)}`, hint);
  }
  tf.removeBackend(name);
  tf.registerBackend(name, () => instance);
  await selectStarted(name);
}

async function startCpu(): Promise<StartedBackend> {
  await selectStarted('cpu');
  return { detail: 'pure JavaScript, every kernel, slowest' };
}

async function startWasm(): Promise<StartedBackend> {
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  let binaries: string;
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The default location is a CDN; the binaries ship in the package's dist/ folder.
    binaries = `${join(dirname(requireHere.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
  } catch (err) {
    throw new BackendError(`cannot load @tensorflow/tfjs-backend-wasm: ${errorText(err)}`, HINTS.wasm);
  }
  wasm.setWasmPaths(binaries);
  await createRegistered('wasm', HINTS.wasm);
  // tfjs turns wasm threads off in Node (its pthread workers load from blob: URLs, which Node's
  // Worker rejects), so the SIMD single-thread build is the fastest that runs; report what loaded.
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = wasm.getThreadsCount();
  return {
    detail: `XNNPACK ${simd ? 'SIMD' : 'without SIMD'}, ${plural(threads, 'thread')}`,
  };
}

interface WebGpuProbe {
  gpu: GPU;
  globals: object;
  summary: GpuAdapterSummary;
}

let webGpuProbe: Promise<WebGpuProbe> | undefined;

/** Loads Dawn and asks it for an adapter, once; `auto` looks at the adapter before starting tfjs on it. */
function probeWebGpu(): Promise<WebGpuProbe> {
  webGpuProbe ??= probeWebGpuOnce().catch((err: unknown) => {
    throw asBackendError('webgpu', err);
  });
  return webGpuProbe;
}

// Software Vulkan drivers (lavapipe, SwiftShader) by manifest name, for the Vulkan loader's
// VK_LOADER_DRIVERS_DISABLE (loader 1.3.234+; older loaders ignore it).
const SOFTWARE_VULKAN_DRIVERS = ['*lvp_icd*', '*swiftshader*'];

/** Linux device nodes of GPUs (DRM render nodes, NVIDIA's, WSL2's): without one, Vulkan is software. */
function linuxGpuDeviceNodes(): string[] {
  const nodes = ['/dev/nvidia0', '/dev/dxg'].filter((path) => existsSync(path));
  try {
    nodes.push(...readdirSync('/dev/dri').filter((name) => name.startsWith('renderD')));
  } catch {
    // no DRM devices
  }
  return nodes;
}

/**
 * The probe for `auto`, which never picks a software adapter. Enumerating lavapipe is what makes
 * Dawn print "maxDynamicUniformBuffersPerPipelineLayout artificially reduced" on every run, so on
 * Linux `auto` does not load Dawn where no GPU device node exists, and otherwise asks it with the
 * software drivers hidden from the Vulkan loader. Only a hardware probe is kept for later explicit
 * `webgpu` requests, which see every driver.
 */
async function probeWebGpuForAuto(): Promise<WebGpuProbe> {
  if (webGpuProbe) return webGpuProbe;
  if (process.platform !== 'linux') return probeWebGpu();
  if (linuxGpuDeviceNodes().length === 0)
    throw new BackendError('no GPU on this machine (no /dev/dri/renderD*, /dev/nvidia0 or /dev/dxg)');
  const saved = process.env.VK_LOADER_DRIVERS_DISABLE;
  process.env.VK_LOADER_DRIVERS_DISABLE = [saved, ...SOFTWARE_VULKAN_DRIVERS].filter(Boolean).join(',');
  try {
    const probe = await probeWebGpuOnce('no hardware WebGPU adapter');
    webGpuProbe ??= Promise.resolve(probe);
    return probe;
  } catch (err) {
    throw asBackendError('webgpu', err);
  } finally {
    if (saved === undefined) delete process.env.VK_LOADER_DRIVERS_DISABLE;
    else process.env.VK_LOADER_DRIVERS_DISABLE = saved;
  }
}

async function probeWebGpuOnce(noAdapter = 'no WebGPU adapter'): Promise<WebGpuProbe> {
  checkVulkanDriverEnv();
  // The Vulkan stack warns on every start where XDG_RUNTIME_DIR is unset (headless servers, CI).
  if (!process.env.XDG_RUNTIME_DIR) {
    const runtimeDir = join(tmpdir(), `facestyle-runtime-${process.getuid?.() ?? 'user'}`);
    mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = runtimeDir;
  }
  let dawn: typeof import('webgpu');
  try {
    dawn = await import('webgpu');
  } catch (err) {
    throw new BackendError(`cannot load Dawn (the webgpu package): ${errorText(err)}`, HINTS.webgpu);
  }
  const gpu = dawn.create(dawnOptions());
  // Same preference as tfjs-backend-webgpu's own request, so the adapter reported is the one used.
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    const icd = ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES']
      .filter((key) => process.env[key])
      .map((key) => `${key}=${process.env[key]}`);
    throw new BackendError(`${noAdapter}${icd.length ? ` (with ${icd.join(', ')})` : ''}`, HINTS.webgpu);
  }
  return { gpu, globals: dawn.globals, summary: summarizeAdapter(adapter) };
}

/**
 * Extra Dawn options, `;`-separated (adapter names contain spaces and toggle lists commas), e.g.
 * FACESTYLE_DAWN_OPTIONS="adapter=NVIDIA H100 80GB HBM3;enable-dawn-features=skip_validation".
 */
function dawnOptions(): string[] {
  return (process.env.FACESTYLE_DAWN_OPTIONS ?? '')
    .split(';')
    .map((option) => option.trim())
    .filter(Boolean);
}

// A driver path that does not exist makes the Vulkan loader silently find no adapter; name it.
function checkVulkanDriverEnv(): void {
  for (const key of ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES']) {
    for (const path of (process.env[key] ?? '').split(delimiter).filter(Boolean)) {
      if (!existsSync(path)) {
        throw new BackendError(`${key} names ${path}, which does not exist`, HINTS.webgpu);
      }
    }
  }
}

function summarizeAdapter(adapter: GPUAdapter): GpuAdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isSoftware:
      info.isFallbackAdapter === true ||
      info.architecture === 'software' ||
      /llvmpipe|lavapipe|swiftshader/i.test(text),
    features: [...adapter.features].sort(),
  };
}

async function startWebGpu(): Promise<StartedBackend> {
  const { gpu, globals, summary } = await probeWebGpu();
  exposeGpu(gpu);
  Object.assign(globalThis, globals);
  // Imported only now: the module registers its backend only if navigator.gpu exists at import time.
  await import('@tensorflow/tfjs-backend-webgpu');
  await createRegistered('webgpu', HINTS.webgpu);
  // Dawn's device is the (slugged) Vulkan device name, its description the driver and version.
  const label = [summary.device || summary.vendor, summary.description].filter(Boolean).join(', ');
  const detail = summary.isSoftware ? `${label}; software adapter: slower than wasm, for tests only` : label;
  return { adapter: summary, detail };
}

// Node >= 21 has a navigator of its own (userAgent, hardwareConcurrency): add gpu to it rather
// than replace it; Node 20 has none.
function exposeGpu(gpu: GPU): void {
  const scope = globalThis as { navigator?: { gpu?: GPU } };
  if (scope.navigator) {
    try {
      Object.defineProperty(scope.navigator, 'gpu', { value: gpu, configurable: true });
    } catch {
      // A frozen navigator: replaced below.
    }
  }
  if (scope.navigator?.gpu !== gpu) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
}

async function startTensorflow(): Promise<StartedBackend> {
  const failures: string[] = [];
  for (const pkg of TENSORFLOW_PACKAGES) {
    try {
      requireHere.resolve(`${pkg}/package.json`);
    } catch {
      failures.push(`${pkg} is not installed`);
      continue;
    }
    try {
      // The name is a variable so that neither tsc nor a bundler tries to resolve an optional package.
      const specifier: string = pkg;
      await import(specifier);
    } catch (err) {
      failures.push(`${pkg} failed to load: ${errorText(err)}`);
      continue;
    }
    await createRegistered(
      'tensorflow',
      `${pkg} must use @tensorflow/tfjs-core ${tf.version_core}; ${HINTS.tensorflow}`,
    );
    return { detail: `${pkg}, libtensorflow` };
  }
  throw new BackendError(`no TensorFlow backend: ${failures.join('; ')}`, HINTS.tensorflow);
}

function asBackendError(name: ConcreteBackendName, err: unknown): BackendError {
  if (err instanceof BackendError) return err;
  const hint = name === 'cpu' ? undefined : HINTS[name];
  return new BackendError(`the ${name} backend failed to start: ${errorText(err)}`, hint);
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'message' in err) return String(err.message);
  return String(err);
}
