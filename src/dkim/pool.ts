/**
 * A pool of worker threads that sign messages, so bulk sending uses every core: RSA signing is
 * the cost of sending a campaign. Each private key crosses to the workers once, the first time
 * it is used, and is kept there by id. After that, a message travels with the id alone.
 * Messages cross as copies and signed messages come back as transferred buffers.
 */
import { type KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

import type { SignOptions } from './types.js';

/** One signature's options as they cross to a worker: the key by id. */
export interface WorkerSignature extends Omit<SignOptions['signatures'][number], 'privateKey'> {
  keyId: number;
}

export type WorkerRequest =
  | { type: 'key'; keyId: number; pem: string }
  | {
      type: 'sign';
      jobId: number;
      messages: Uint8Array[];
      signatures: WorkerSignature[];
      time?: number;
    };

export type WorkerResponse =
  | { type: 'signed'; jobId: number; messages: Uint8Array[] }
  | { type: 'error'; jobId: number; message: string };

export interface SigningPool {
  /** Signs one message; resolves to the message with its DKIM-Signature fields on top. */
  sign(message: Buffer, options: SignOptions): Promise<Buffer>;
  /** Signs a batch, split evenly over the workers; resolves in the order given. */
  signBatch(messages: readonly Buffer[], options: SignOptions): Promise<Buffer[]>;
  /** Stops the workers; pending jobs reject. */
  close(): Promise<void>;
  readonly size: number;
}

interface PendingJob {
  resolve: (messages: Buffer[]) => void;
  reject: (error: Error) => void;
  worker: WorkerState;
}

interface WorkerState {
  worker: Worker;
  pending: number;
  alive: boolean;
}

/**
 * Finds the worker script: the built `.js` beside this file, or, when this file runs as
 * TypeScript source (tests, benchmarks under tsx), the `.ts` source loaded through tsx.
 */
function workerScript(): URL {
  const fromSource = import.meta.url.endsWith('.ts');
  return new URL(fromSource ? './pool-worker.ts' : './pool-worker.js', import.meta.url);
}

function startWorker(script: URL): Worker {
  if (!script.pathname.endsWith('.ts')) return new Worker(script);
  // Loader flags such as `--import tsx` do not apply to worker threads in Node 20, so the
  // worker imports the source through tsx's API instead.
  const code = `import('tsx/esm/api').then((api) => api.tsImport(${JSON.stringify(script.href)}, ${JSON.stringify(script.href)}))`;
  return new Worker(code, { eval: true });
}

/**
 * Starts `size` workers (the number of cores when absent). Under a TypeScript loader (tests,
 * benchmarks) the workers load the TypeScript source through tsx; built code loads the `.js`.
 */
export function createSigningPool(options: { size?: number } = {}): SigningPool {
  const size = Math.max(1, options.size ?? availableParallelism());
  const workerUrl = workerScript();
  const jobs = new Map<number, PendingJob>();
  const keyIds = new WeakMap<KeyObject, number>();
  let nextKeyId = 1;
  let nextJobId = 1;
  let closed = false;

  const workers: WorkerState[] = [];
  for (let index = 0; index < size; index++) {
    const state: WorkerState = { worker: startWorker(workerUrl), pending: 0, alive: true };
    state.worker.on('message', (response: WorkerResponse) => settle(response));
    state.worker.on('error', (error) => failWorker(state, error));
    state.worker.on('exit', (code) =>
      failWorker(state, new Error(`signing worker exited with code ${code}`)),
    );
    state.worker.unref();
    workers.push(state);
  }

  function settle(response: WorkerResponse): void {
    const job = jobs.get(response.jobId);
    if (job === undefined) return;
    jobs.delete(response.jobId);
    job.worker.pending--;
    if (jobs.size === 0) for (const state of workers) state.worker.unref();
    if (response.type === 'error') job.reject(new Error(response.message));
    else
      job.resolve(
        response.messages.map((bytes) =>
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        ),
      );
  }

  function failWorker(state: WorkerState, error: Error): void {
    state.alive = false;
    for (const [jobId, job] of jobs) {
      if (job.worker !== state) continue;
      jobs.delete(jobId);
      job.reject(error);
    }
  }

  /** Sends each key the workers have not seen, and returns the signatures by key id. */
  function toWorkerSignatures(signOptions: SignOptions): WorkerSignature[] {
    return signOptions.signatures.map(({ privateKey, ...rest }) => {
      let keyId = keyIds.get(privateKey);
      if (keyId === undefined) {
        keyId = nextKeyId++;
        keyIds.set(privateKey, keyId);
        const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
        for (const state of workers)
          state.worker.postMessage({ type: 'key', keyId, pem } satisfies WorkerRequest);
      }
      return { ...rest, keyId };
    });
  }

  function run(
    messages: readonly Buffer[],
    signOptions: SignOptions,
    state: WorkerState,
  ): Promise<Buffer[]> {
    if (closed) return Promise.reject(new Error('the signing pool is closed'));
    if (!state.alive) return Promise.reject(new Error('the signing worker has stopped'));
    const signatures = toWorkerSignatures(signOptions);
    const jobId = nextJobId++;
    state.pending++;
    state.worker.ref();
    return new Promise<Buffer[]>((resolve, reject) => {
      jobs.set(jobId, { resolve, reject, worker: state });
      const request: WorkerRequest = {
        type: 'sign',
        jobId,
        messages: messages.map(
          (message) => new Uint8Array(message.buffer, message.byteOffset, message.byteLength),
        ),
        signatures,
        time: signOptions.time?.getTime(),
      };
      state.worker.postMessage(request);
    });
  }

  function leastBusy(): WorkerState {
    const alive = workers.filter((state) => state.alive);
    let best = alive[0] ?? workers[0];
    if (best === undefined) throw new Error('the signing pool has no workers');
    for (const state of alive) if (state.pending < best.pending) best = state;
    return best;
  }

  return {
    size,
    async sign(message, signOptions) {
      const [signed] = await run([message], signOptions, leastBusy());
      if (signed === undefined) throw new Error('the signing worker returned no message');
      return signed;
    },
    async signBatch(messages, signOptions) {
      const share = Math.ceil(messages.length / size);
      const parts: Promise<Buffer[]>[] = [];
      for (let index = 0; index * share < messages.length; index++) {
        const slice = messages.slice(index * share, (index + 1) * share);
        const alive = workers.filter((state) => state.alive);
        parts.push(
          run(slice, signOptions, alive[index % Math.max(1, alive.length)] ?? leastBusy()),
        );
      }
      return (await Promise.all(parts)).flat();
    },
    async close() {
      closed = true;
      await Promise.all(workers.map((state) => state.worker.terminate()));
      for (const job of jobs.values()) job.reject(new Error('the signing pool was closed'));
      jobs.clear();
    },
  };
}
