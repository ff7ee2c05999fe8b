import type { ReadRequest } from "./sqlite-reader.js";
import type { HistoryJson, HistoryRange } from "./store.js";
import { StoreThread } from "./store-thread.js";

/** After a thread failed, reads stay on the event loop this long before threads are tried again. */
const COOLDOWN_MS = 60_000;

/** Reads on the event loop, with the store's own connection: the way back when a thread cannot answer. */
export type ReadInLoop = (request: ReadRequest) => HistoryJson[];

/**
 * History range reads of the SQLite store in worker threads, each with a read-only connection. A
 * 36,000-point read costs SQLite and JavaScript some 50 ms of CPU; on the event loop that holds every other
 * request for as long, and it uses one core. Here the elements of a read are split between the threads,
 * which answer with each element's finished JSON text, while the event loop serves everything else.
 * Threads start on the first read and end when idle, so a server nobody asks for history pays no memory
 * for them.
 */
export class HistoryReaders {
  private readonly threads: (StoreThread<ReadRequest, HistoryJson[]> | undefined)[];
  private coolUntil = 0;

  constructor(
    private readonly file: string,
    count: number,
    private readonly readInLoop: ReadInLoop,
  ) {
    this.threads = new Array(count).fill(undefined);
  }

  async read(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    const unique = [...new Set(ids)];
    const out = new Map<string, HistoryJson>();
    if (unique.length === 0) return out;
    if (Date.now() < this.coolUntil) {
      collect(out, unique, this.readInLoop({ ids: unique, range }));
      return out;
    }
    // Round robin: a read's elements usually have similar ranges, so each thread gets a similar share.
    const n = Math.min(this.threads.length, unique.length);
    const shares: string[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < unique.length; i++) shares[i % n].push(unique[i]);
    const answers = await Promise.all(shares.map((ids, i) => this.thread(i).request({ ids, range })));
    for (let t = 0; t < n; t++) collect(out, shares[t], answers[t]);
    return out;
  }

  /** Ends every thread; reads still waiting for one are read on the event loop. */
  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t?.end()));
  }

  private thread(slot: number): StoreThread<ReadRequest, HistoryJson[]> {
    let thread = this.threads[slot];
    if (thread === undefined) {
      const started = new StoreThread<ReadRequest, HistoryJson[]>({
        entry: "sqlite-reader",
        name: "i3xd-history-reader",
        workerData: { file: this.file },
        // A read leaves megabytes of short-lived strings; a young generation smaller than V8's default
        // collects them sooner. In the benchmark's 36,000-point read loop: RSS 236 MiB afterwards instead
        // of 344 (265 with 32 MB), for ~5 ms more CPU per read.
        resourceLimits: { maxYoungGenerationSizeMb: 8 },
        inLoop: this.readInLoop,
        onEnd: (failed) => {
          if (this.threads[slot] === started) this.threads[slot] = undefined;
          if (failed) this.coolUntil = Date.now() + COOLDOWN_MS;
        },
      });
      this.threads[slot] = started;
      thread = started;
    }
    return thread;
  }
}

function collect(out: Map<string, HistoryJson>, ids: readonly string[], series: HistoryJson[]): void {
  for (let i = 0; i < ids.length; i++) out.set(ids[i], series[i]);
}
