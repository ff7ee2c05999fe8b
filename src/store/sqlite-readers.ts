import { Worker } from "node:worker_threads";
import { getLogger } from "../observability/logger.js";
import { workerEntry } from "../worker-entry.js";
import type { ReaderData, ReadReply, ReadRequest } from "./sqlite-reader.js";
import type { HistoryJson, HistoryRange } from "./store.js";

const log = getLogger("i3xd.store");

/** A thread that has read nothing for this long ends; the next read starts it again (~40 ms). */
const IDLE_MS = 10_000;
/** After a thread failed, reads stay on the event loop this long before threads are tried again. */
const COOLDOWN_MS = 60_000;

/** Reads on the event loop, with the store's own connection: the way back when a thread cannot answer. */
export type ReadInThread = (ids: readonly string[], range: HistoryRange) => HistoryJson[];

interface Pending {
  ids: readonly string[];
  range: HistoryRange;
  resolve(series: HistoryJson[]): void;
  reject(err: unknown): void;
}

/**
 * History range reads of the SQLite store in worker threads, each with a read-only connection. A
 * 36,000-point read costs SQLite and JavaScript some 50 ms of CPU; on the event loop that holds every other
 * request for as long, and it uses one core. Here the elements of a read are split between the threads,
 * which answer with each element's finished JSON text, while the event loop serves everything else.
 * Threads start on the first read and end when idle, so a server nobody asks for history pays no memory
 * for them. Whatever a thread cannot answer (it failed, or crashed) is read on the event loop instead, with
 * the same code, so a read never fails because of the threads.
 */
export class HistoryReaders {
  private readonly threads: (ReaderThread | undefined)[];
  private coolUntil = 0;

  constructor(
    private readonly file: string,
    count: number,
    private readonly readInThread: ReadInThread,
  ) {
    this.threads = new Array(count).fill(undefined);
  }

  async read(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    const unique = [...new Set(ids)];
    const out = new Map<string, HistoryJson>();
    if (unique.length === 0) return out;
    if (Date.now() < this.coolUntil) {
      collect(out, unique, this.readInThread(unique, range));
      return out;
    }
    // Round robin: a read's elements usually have similar ranges, so each thread gets a similar share.
    const n = Math.min(this.threads.length, unique.length);
    const shares: string[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < unique.length; i++) shares[i % n].push(unique[i]);
    const answers = await Promise.all(shares.map((share, i) => this.thread(i).read(share, range)));
    for (let t = 0; t < n; t++) collect(out, shares[t], answers[t]);
    return out;
  }

  /** Ends every thread; reads still waiting for one are read on the event loop. */
  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t?.end()));
  }

  private thread(slot: number): ReaderThread {
    let thread = this.threads[slot];
    if (thread === undefined) {
      thread = new ReaderThread(this.file, this.readInThread, (failed) => {
        if (this.threads[slot] === thread) this.threads[slot] = undefined;
        if (failed) this.coolUntil = Date.now() + COOLDOWN_MS;
      });
      this.threads[slot] = thread;
    }
    return thread;
  }
}

function collect(out: Map<string, HistoryJson>, ids: readonly string[], series: HistoryJson[]): void {
  for (let i = 0; i < ids.length; i++) out.set(ids[i], series[i]);
}

class ReaderThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private idle: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    file: string,
    private readonly readInThread: ReadInThread,
    private readonly onEnd: (failed: boolean) => void,
  ) {
    const data: ReaderData = { file };
    this.worker = new Worker(workerEntry(import.meta.url, "sqlite-reader"), {
      workerData: data,
      name: "i3xd-history-reader",
      // A read leaves megabytes of short-lived strings; a young generation smaller than V8's default
      // collects them sooner. In the benchmark's 36,000-point read loop: RSS 236 MiB afterwards instead
      // of 344 (265 with 32 MB), for ~5 ms more CPU per read.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    this.worker.on("message", (reply: ReadReply) => this.answer(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", (code) => {
      if (!this.ended) this.fail(new Error(`history reader thread exited with code ${code}`));
    });
  }

  read(ids: readonly string[], range: HistoryRange): Promise<HistoryJson[]> {
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.idle = undefined;
    const seq = this.seq++;
    // Alive while it owes an answer; an idle thread never keeps the process from exiting.
    if (this.pending.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { ids, range, resolve, reject });
      this.worker.postMessage({ seq, ids, range } satisfies ReadRequest);
    });
  }

  end(): Promise<number> {
    this.finish(false);
    return this.worker.terminate();
  }

  private answer(reply: ReadReply): void {
    const p = this.pending.get(reply.seq);
    if (p === undefined) return;
    this.pending.delete(reply.seq);
    if (!("series" in reply)) {
      // The same read on the event loop either answers or throws the store's own error.
      this.settleInThread(p);
      this.fail(new Error(reply.error));
      return;
    }
    p.resolve(reply.series);
    if (this.pending.size === 0 && !this.ended) {
      this.worker.unref();
      this.idle = setTimeout(() => void this.end(), IDLE_MS);
      this.idle.unref();
    }
  }

  private fail(err: unknown): void {
    if (this.ended) return;
    log.error({ err }, "A history reader thread failed; history reads run on the event loop for a minute");
    this.finish(true);
    void this.worker.terminate();
  }

  private finish(failed: boolean): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.onEnd(failed);
    for (const p of this.pending.values()) this.settleInThread(p);
    this.pending.clear();
  }

  private settleInThread(p: Pending): void {
    try {
      p.resolve(this.readInThread(p.ids, p.range));
    } catch (err) {
      p.reject(err);
    }
  }
}
