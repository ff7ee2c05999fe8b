/**
 * The wait before retry `attempts` (from 0): doubling from `minMs` up to `maxMs`, drawn in the upper half
 * of that (half jitter: spread out, yet never much sooner than the doubling says).
 */
export function halfJitterDelayMs(attempts: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempts, 30));
  return base / 2 + Math.random() * (base / 2);
}
