import { describe, expect, it } from 'vitest';

import { MemoryTokenStore } from './token-store.js';

describe('MemoryTokenStore', () => {
  let time = 1_000_000;
  const now = () => new Date(time);

  it('returns stored entries until they expire', async () => {
    const store = new MemoryTokenStore({ now });
    await store.put('AAAA', 'a@example.com', new Date(time + 1000));
    expect(await store.get('AAAA')).toBe('a@example.com');
    expect(await store.get('BBBB')).toBeUndefined();
    time += 1000;
    expect(await store.get('AAAA')).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('drops expired entries, then the oldest, when full', async () => {
    const store = new MemoryTokenStore({ maxEntries: 3, now });
    await store.put('OLD', 'old@example.com', new Date(time + 10_000));
    await store.put('SHORT', 'short@example.com', new Date(time + 10));
    await store.put('MID', 'mid@example.com', new Date(time + 10_000));
    time += 10;
    await store.put('NEW', 'new@example.com', new Date(time + 10_000));
    expect(store.size).toBe(3);
    expect(await store.get('OLD')).toBe('old@example.com');
    await store.put('NEWER', 'newer@example.com', new Date(time + 10_000));
    expect(store.size).toBe(3);
    expect(await store.get('OLD')).toBeUndefined();
    expect(await store.get('MID')).toBe('mid@example.com');
    expect(await store.get('NEWER')).toBe('newer@example.com');
  });

  it('replaces an entry put twice', async () => {
    const store = new MemoryTokenStore({ maxEntries: 2, now });
    await store.put('A', 'first@example.com', new Date(time + 100));
    await store.put('A', 'second@example.com', new Date(time + 100));
    expect(store.size).toBe(1);
    expect(await store.get('A')).toBe('second@example.com');
  });

  it('purges expired entries on request', async () => {
    const store = new MemoryTokenStore({ now });
    await store.put('A', 'a@example.com', new Date(time + 5));
    await store.put('B', 'b@example.com', new Date(time + 50));
    time += 10;
    expect(await store.purgeExpired()).toBe(1);
    expect(store.size).toBe(1);
  });

  it('rejects a non-positive capacity', () => {
    expect(() => new MemoryTokenStore({ maxEntries: 0 })).toThrow(RangeError);
  });
});
