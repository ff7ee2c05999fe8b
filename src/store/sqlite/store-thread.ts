import { type ResourceLimits, Worker } from "node:worker_threads";
import { getLogger } from "../../observability/logger.js";
import { workerEntry } from "../../worker-entry.js";
import type { Reply } from "./store-thread-serve.js";

const log = getLogger("i3xd.store");

/** A thread that has had nothing to do for this long ends; the next request starts it again (~40 ms). */
const IDLE_MS = 10_000;
/** After a thread failed, its work stays on the event loop this long before a thread is tried again. */
const COOLDOWN_MS = 60_000;

interface Pending<Q, A> {
  request: Q;
  resolve(answer: A): void;
  reject(err: unknown): void;
}

export interface StoreThreadOptions<Q, A> {
  /** The entry module next to this one (`workerEntry`); it answers with `serveStoreRequests`. */
  entry: string;
  name: string;
  workerData: unknown;
  resourceLimits?: ResourceLimits;
  /** The same request done on the event loop: what a thread that cannot answer hands its requests to. */
  inLoop(request: Q): A;
  /** Called once when the thread ends; `failed` when it ended because it failed. */
  onEnd(failed: boolean): void;
}

/**
 * One worker thread doing store work (the history readers, `sqlite-readers.ts`), started on demand and
 * ended when idle. Requests are answered in the order they were sent. A request the thread cannot answer,
 * because it failed, crashed or was ended while the request waited, is done on the event loop instead with
 * the same code, so it either succeeds or throws the store's own error: the thread never changes an
 * outcome, only where the work runs. Store requests are reads, so doing one again after a thread died
 * part-way answers the same.
 */
export class StoreThread<Q, A> {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending<Q, A>>();
  private seq = 0;
  private idle: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(private readonly options: StoreThreadOptions<Q, A>) {
    this.worker = new Worker(workerEntry(import.meta.url, options.entry), {
      workerData: options.workerData,
      name: options.name,
      resourceLimits: options.resourceLimits,
    });
    this.worker.on("message", (reply: Reply<A>) => this.answer(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", (code) => {
      if (!this.ended) this.fail(new Error(`${options.name} thread exited with code ${code}`));
    });
  }

  request(request: Q): Promise<A> {
    if (this.ended) return this.inLoop(request);
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.idle = undefined;
    const seq = this.seq++;
    // Alive while it owes an answer; an idle thread never keeps the process from exiting.
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { request, resolve, reject });
      this.worker.postMessage({ seq, request });
    });
  }

  /** Ends the thread; requests still waiting for it are done on the event loop. */
  end(): Promise<number> {
    this.finish(false);
    return this.worker.terminate();
  }

  private answer(reply: Reply<A>): void {
    const p = this.pending.get(reply.seq);
    if (p === undefined) return;
    this.pending.delete(reply.seq);
    if ("error" in reply) {
      this.settleInLoop(p);
      this.fail(new Error(reply.error));
      return;
    }
    p.resolve(reply.answer);
    if (this.pending.size === 0 && !this.ended) {
      this.worker.unref();
      this.idle = setTimeout(() => void this.end(), IDLE_MS);
      this.idle.unref();
    }
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    log.error({ err, thread: this.options.name }, "A store thread failed; its work runs on the event loop");
    this.finish(true);
    void this.worker.terminate();
  }

  private finish(failed: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.options.onEnd(failed);
    for (const p of this.pending.values()) this.settleInLoop(p);
    this.pending.clear();
  }

  private inLoop(request: Q): Promise<A> {
    return new Promise((resolve, reject) => this.settleInLoop({ request, resolve, reject }));
  }

  private settleInLoop(p: Pending<Q, A>): void {
    try {
      p.resolve(this.options.inLoop(p.request));
    } catch (err) {
      p.reject(err);
    }
  }
}

/** When the threads of one or more slots may start again after a failure; slots failing alike share one. */
export interface Cooldown {
  until: number;
}

/**
 * Where one on-demand `StoreThread` lives: started by the first request, gone when it ends, and for a
 * minute after it failed not started again (its requests are then done on the event loop).
 */
export class ThreadSlot<Q, A> {
  private thread: StoreThread<Q, A> | undefined;

  constructor(
    private readonly options: Omit<StoreThreadOptions<Q, A>, "onEnd">,
    private readonly cooldown: Cooldown = { until: 0 },
  ) {}

  /** A thread failed within the last minute: requests now run on the event loop. */
  get cooling(): boolean {
    return Date.now() < this.cooldown.until;
  }

  request(request: Q): Promise<A> {
    if (this.cooling) return new Promise((resolve) => resolve(this.options.inLoop(request)));
    if (this.thread === undefined) {
      const started = new StoreThread<Q, A>({
        ...this.options,
        onEnd: (failed) => {
          if (this.thread === started) this.thread = undefined;
          if (failed) this.cooldown.until = Date.now() + COOLDOWN_MS;
        },
      });
      this.thread = started;
    }
    return this.thread.request(request);
  }

  /** Ends the thread, if one runs; requests still waiting for it are done on the event loop. */
  async end(): Promise<void> {
    await this.thread?.end();
  }
}
