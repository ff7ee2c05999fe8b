import { parentPort } from "node:worker_threads";

/** What a store thread answers a request with: the answer, or the message of the error it threw. */
export type Reply<A> = { seq: number; answer: A } | { seq: number; error: string };

/**
 * The thread's side of `StoreThread`: answers each request with `handle`, in order. Kept apart from it so
 * that a thread loads nothing but what its work needs.
 */
export function serveStoreRequests<Q, A>(
  handle: (request: Q) => A,
  /** What of an answer is moved to the event loop rather than copied (e.g. the buffers of bytes). */
  movable: (answer: A) => ArrayBuffer[] = () => [],
): void {
  parentPort?.on("message", ({ seq, request }: { seq: number; request: Q }) => {
    let reply: Reply<A>;
    let transfer: ArrayBuffer[] = [];
    try {
      const answer = handle(request);
      reply = { seq, answer };
      transfer = movable(answer);
    } catch (err) {
      reply = { seq, error: err instanceof Error ? err.message : String(err) };
    }
    parentPort?.postMessage(reply, transfer);
  });
}
