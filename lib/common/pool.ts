import { availableParallelism } from 'node:os';

/** Default number of files worked on at once: one per core. */
export const DEFAULT_CONCURRENCY = availableParallelism();

/**
 * Maps `items` through `fn` with at most `limit` calls in flight, keeping
 * order. After a failure no new call starts, and the first error is thrown
 * only once every running call has settled (so callers can clean up safely).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length && errors.length === 0) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (errors.length > 0) throw errors[0];
  return results;
}
