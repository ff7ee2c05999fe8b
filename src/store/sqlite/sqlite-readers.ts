import type { HistoryJson, HistoryRange } from "../store.js";
import type { ReadRequest } from "./sqlite-reader.js";
import { type Cooldown, ThreadSlot } from "./store-thread.js";

/** Reads on the event loop, with the store's own connection: the way back when a thread cannot answer. */
export type ReadInLoop = (request: ReadRequest) => HistoryJson[];

/**
 * History range reads of the SQLite store in worker threads, each with a read-only connection. A large
 * read costs SQLite and JavaScript tens of milliseconds of CPU; on the event loop that holds every other
 * request for as long, and it uses one core. Here the elements of a read are split between the threads,
 * which answer with each element's finished JSON text, while the event loop serves everything else.
 * Threads start on the first read and end when idle, so a server nobody asks for history pays no memory
 * for them.
 */
export class HistoryReaders {
  private readonly slots: ThreadSlot<ReadRequest, HistoryJson[]>[];

  constructor(file: string, count: number, readInLoop: ReadInLoop) {
    // The threads open the same file: when one fails, the others would too, so they cool down together.
    const cooldown: Cooldown = { until: 0 };
    this.slots = Array.from(
      { length: count },
      () =>
        new ThreadSlot<ReadRequest, HistoryJson[]>(
          {
            entry: "sqlite-reader",
            name: "i3xd-history-reader",
            workerData: { file },
            // A read leaves megabytes of short-lived strings; a young generation smaller than V8's default
            // collects them sooner, trading a little CPU per read for much less RSS
            // (docs/performance-notes.md).
            resourceLimits: { maxYoungGenerationSizeMb: 8 },
            inLoop: readInLoop,
          },
          cooldown,
        ),
    );
  }

  async read(ids: readonly string[], range: HistoryRange): Promise<Map<string, HistoryJson>> {
    const unique = [...new Set(ids)];
    const out = new Map<string, HistoryJson>();
    if (unique.length === 0) return out;
    // Round robin: a read's elements usually have similar ranges, so each thread gets a similar share.
    const n = Math.min(this.slots.length, unique.length);
    const shares: string[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < unique.length; i++) shares[i % n].push(unique[i]);
    const answers = await Promise.all(shares.map((ids, i) => this.slots[i].request({ ids, range })));
    for (let t = 0; t < n; t++) {
      const share = shares[t];
      for (let i = 0; i < share.length; i++) out.set(share[i], answers[t][i]);
    }
    return out;
  }

  /** Ends every thread; reads still waiting for one are read on the event loop. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.end()));
  }
}
