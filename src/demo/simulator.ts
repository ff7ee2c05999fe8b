import { Access } from "../domain/access.js";
import { formatTimestampUs, nowUs } from "../domain/time.js";
import { getLogger } from "../observability/logger.js";
import type { WriteService, WriteUpdate } from "../services/writes.js";
import {
  advance,
  DEMO_VALUE_IDS,
  type PlantState,
  plantValues,
  type Random,
  restoreState,
} from "./plant-physics.js";

const log = getLogger("i3xd.simulator");

/** After a long stop the plant is integrated over at most this much of the gap, then simply carries on. */
const MAX_CATCH_UP_US = 3_600_000_000;

/**
 * Drives the demo plant: about once per interval it advances the same physics that produced the seeded
 * history and writes every demo object's new value through the write service (one call per tick), so
 * simulated data is validated, stored, counted and delivered to subscribers exactly like a client's write.
 * On its first tick it resumes from the stored current values, so a restart continues the story.
 */
export class Simulator {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;
  private state: PlantState | undefined;
  private lastProblem = "";

  constructor(
    private readonly writes: WriteService,
    private readonly intervalMs: number,
    private readonly random: Random = Math.random,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    // The first tick waits a full interval, so the seeded values are what a fresh server shows first.
    this.schedule(this.intervalMs);
    log.info({ intervalMs: this.intervalMs, objects: DEMO_VALUE_IDS.length }, "Simulator started");
  }

  /** Stops the timer; resolves once a tick that was already writing has finished. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    log.info("Simulator stopped");
  }

  /** Runs one tick now (tests use this instead of waiting for the timer). */
  async tick(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = this.runTick().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      void this.tick().finally(() => this.schedule(Math.max(0, this.intervalMs - (Date.now() - started))));
    }, delayMs);
    // The simulator must never keep the process alive on its own.
    this.timer.unref();
  }

  private async runTick(): Promise<void> {
    try {
      const now = nowUs();
      if (!this.state) {
        this.state = restoreState(await this.writes.currentValues(DEMO_VALUE_IDS), now);
      }
      const state = this.state;
      if (now - state.tUs > MAX_CATCH_UP_US) state.tUs = now - MAX_CATCH_UP_US;
      advance(state, now, this.random);
      const timestamp = formatTimestampUs(now);
      const updates: WriteUpdate[] = [];
      for (const [elementId, value] of plantValues(state, this.random)) {
        updates.push({ elementId, value: { value, quality: "Good", timestamp } });
      }
      const results = await this.writes.writeCurrent(Access.everything, updates);
      this.report(results.filter((r) => !r.success).map((r) => `${r.id}: ${describe(r)}`));
    } catch (err) {
      this.report([err instanceof Error ? err.message : String(err)], err);
    }
  }

  /** Logs a problem when it first appears or changes, not on every tick. */
  private report(problems: string[], err?: unknown): void {
    const text = problems.join("; ");
    if (text === this.lastProblem) return;
    this.lastProblem = text;
    if (text === "") log.info("Simulator writes succeed again");
    else if (err) log.error({ exception: err }, "Simulator tick failed");
    else log.warn({ failures: problems.length, detail: text }, "Simulator writes rejected");
  }
}

function describe(result: { success: boolean; responseDetail?: { status: number; detail: string } }): string {
  return result.responseDetail ? `${result.responseDetail.status} ${result.responseDetail.detail}` : "failed";
}
