/** The worker side of the signing pool: keeps keys by id and signs batches of messages. */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

import type { WorkerRequest, WorkerResponse } from './pool.js';
import { signMessage } from './sign.js';

const keys = new Map<number, KeyObject>();
const port = parentPort;
if (port === null) throw new Error('pool-worker must run in a worker thread');

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'key') {
    keys.set(request.keyId, createPrivateKey(request.pem));
    return;
  }
  let response: WorkerResponse;
  try {
    const signatures = request.signatures.map(({ keyId, ...rest }) => {
      const privateKey = keys.get(keyId);
      if (privateKey === undefined)
        throw new Error(`signing key ${keyId} was never sent to the worker`);
      return { ...rest, privateKey };
    });
    const time = request.time === undefined ? undefined : new Date(request.time);
    const messages = request.messages.map((bytes) => {
      const signed = signMessage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
        signatures,
        time,
      });
      return new Uint8Array(signed.buffer, signed.byteOffset, signed.byteLength);
    });
    response = { type: 'signed', jobId: request.jobId, messages };
    // Transfer only buffers the signed messages own whole; pooled slices are copied.
    const transfer = messages
      .filter((m) => m.byteOffset === 0 && m.byteLength === m.buffer.byteLength)
      .map((m) => m.buffer);
    port.postMessage(response, transfer as ArrayBuffer[]);
  } catch (error) {
    response = {
      type: 'error',
      jobId: request.jobId,
      message: error instanceof Error ? error.message : String(error),
    };
    port.postMessage(response);
  }
});
