import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Length of a queue id: 12 base62 characters carry about 71 bits, so ids never collide. */
export const QUEUE_ID_LENGTH = 12;

/**
 * Generate a random queue id of base62 characters, like Postfix's long queue ids. Bytes of 248
 * and above are skipped so that every character is equally likely (248 = 4 * 62).
 */
export function newQueueId(length = QUEUE_ID_LENGTH): string {
  let id = '';
  while (id.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue;
      id += BASE62[byte % 62];
      if (id.length === length) break;
    }
  }
  return id;
}
