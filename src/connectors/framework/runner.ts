import path from "node:path";
import type { Logger } from "pino";
import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../../domain/history-read.js";
import type { LeaderElection, LeaderLease } from "../../domain/leadership.js";
import { nowUs } from "../../domain/time.js";
import type { ModelDocument } from "../../model/format.js";
import { LogBursts } from "../../observability/log-bursts.js";
import { getLogger } from "../../observability/logger.js";
import {
  connectorIngestLag,
  connectorMessages,
  connectorQueuedBytes,
  connectorQueuedPoints,
  connectorReconnects,
  connectorUp,
} from "../../observability/metrics.js";
import { traceConnectorBatch } from "../../observability/tracing.js";
import type { ConnectorStatus, ConnectorWriteItem, ConnectorWriteResult } from "../../services/connectors.js";
import type { ModelWriteService } from "../../services/model-writes.js";
import type { WriteResult, WriteService } from "../../services/writes.js";
import type {
  Connector,
  ConnectorContext,
  ConnectorKind,
  ConnectorSettings,
  ConnectorState,
  MessageOutcome,
  SourcePoint,
} from "../connector.js";
import type { ConnectorEntry } from "./config-file.js";
import { BoundedQueue, type QueuedBatch, type QueueEntry } from "./queue.js";

/** What a runner needs from the rest of the server. */
export interface RunnerDeps {
  writes: WriteService;
  modelWrites: ModelWriteService;
  election: LeaderElection;
  /** `I3XD_DATA_DIR`: each connector gets `connectors/<name>/` below it. */
  dataDir: string;
  timing?: RunnerTiming;
}

export interface RunnerTiming {
  /** How often a standby asks for the leadership again. */
  standbyRetryMs: number;
  /** Longest wait before a failed start is tried again (doubling from a second). */
  restartMaxMs: number;
  /** Longest wait before a failed store write is tried again (doubling from 100 ms). */
  writeRetryMaxMs: number;
}

const DEFAULT_TIMING: RunnerTiming = { standbyRetryMs: 2000, restartMaxMs: 30_000, writeRetryMaxMs: 5000 };

/** Points per write: big enough to amortise a transaction, small enough to keep one write short. */
const BATCH_POINTS = 5000;

const OUTCOMES: readonly MessageOutcome[] = ["received", "stored", "unmatched", "invalid", "dropped"];

/**
 * Runs one configured connector: asks for its leadership until this replica holds it, then creates and
 * starts the connector, gives it its context (the bounded queue, the model-write path, state and counts),
 * drains the queue into the write path, and stops the connector when the leadership or the server goes.
 */
export class ConnectorRunner implements ConnectorContext {
  readonly settings: ConnectorSettings;
  readonly log: Logger;
  readonly dataDir: string;
  private readonly queue: BoundedQueue;
  private readonly bursts: LogBursts;
  private readonly counters: Record<MessageOutcome, { inc(n: number): void }>;
  private readonly lag: { observe(v: number): void };
  private readonly timing: RunnerTiming;
  private connector: Connector | undefined;
  private lease: LeaderLease | undefined;
  private state: ConnectorState = "standby";
  private detail: string | undefined;
  private stopping = false;
  private running: Promise<void> | undefined;
  private wakeLoop: () => void = () => {};
  private drainLoop: Promise<void> | undefined;
  private draining = false;
  private halt: () => void = () => {};
  /** Settles when the server stops this runner. */
  private readonly halted = new Promise<void>((resolve) => {
    this.halt = resolve;
  });

  constructor(
    entry: ConnectorEntry,
    private readonly kind: ConnectorKind,
    private readonly deps: RunnerDeps,
  ) {
    this.settings = entry.settings;
    const name = entry.settings.name;
    this.log = getLogger(`i3xd.connector.${name}`);
    this.dataDir = path.join(deps.dataDir, "connectors", name);
    this.timing = deps.timing ?? DEFAULT_TIMING;
    this.bursts = new LogBursts(this.log);
    // Label children looked up once: the queue changes with every submitted message.
    const queuedPoints = connectorQueuedPoints.labels({ connector: name });
    const queuedBytes = connectorQueuedBytes.labels({ connector: name });
    this.queue = new BoundedQueue(entry.queue, () => {
      queuedPoints.set(this.queue.points);
      queuedBytes.set(this.queue.bytes);
    });
    this.counters = Object.fromEntries(
      OUTCOMES.map((outcome) => [outcome, connectorMessages.labels({ connector: name, outcome })]),
    ) as Record<MessageOutcome, { inc(n: number): void }>;
    this.lag = connectorIngestLag.labels({ connector: name });
    // Series from the start, so a rate or an alert is defined before the first message.
    for (const c of Object.values(this.counters)) c.inc(0);
    connectorReconnects.inc({ connector: name }, 0);
    queuedPoints.set(0);
    queuedBytes.set(0);
  }

  get name(): string {
    return this.settings.name;
  }

  /** This replica holds the connector's leadership (whether or not its source is up). */
  get leading(): boolean {
    return this.lease !== undefined;
  }

  /** Starts asking for the leadership; returns at once (the connector starts when this replica leads). */
  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.halt();
    this.wakeLoop();
    this.queue.wake();
    await this.running;
  }

  status(): ConnectorStatus {
    let detail = this.detail;
    let extra: Record<string, unknown> | undefined;
    if (this.connector !== undefined && this.state !== "standby") {
      try {
        const health = this.connector.health();
        detail ??= health.detail;
        extra = health.extra;
      } catch {
        // A failing health() must not break readiness; the state set by the connector still stands.
      }
    }
    return {
      name: this.name,
      kind: this.settings.kind,
      state: this.state,
      required: this.settings.required,
      ...(detail === undefined ? {} : { detail }),
      ...(extra === undefined ? {} : { extra }),
    };
  }

  /** The connector's own history read, when it runs here and can read history; undefined otherwise. */
  readHistory(
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
  ): Promise<HistoryReadResult[]> | undefined {
    const connector = this.runningHere();
    if (connector?.readHistory === undefined) return undefined;
    return connector.readHistory(items, range);
  }

  /** The connector, when it runs on this replica (this one leads it and it has not stopped). */
  private runningHere(): Connector | undefined {
    return this.state === "standby" || this.state === "stopped" ? undefined : this.connector;
  }

  async writeBack(items: readonly ConnectorWriteItem[]): Promise<ConnectorWriteResult[]> {
    const refuse = (status: number, detail: string) =>
      items.map(() => ({ ok: false as const, status, detail }));
    const connector = this.runningHere();
    if (connector === undefined) {
      return refuse(
        503,
        `connector "${this.name}" does not run on this replica (another replica leads it, or it is not started); retry later or on the replica that runs it`,
      );
    }
    if (connector.write === undefined) {
      return refuse(
        405,
        `connector "${this.name}" (kind ${this.settings.kind}) does not write to its source`,
      );
    }
    let results: ConnectorWriteResult[];
    try {
      results = await connector.write(items);
    } catch (err) {
      this.log.warn({ exception: err, items: items.length }, "Write-back failed");
      return refuse(502, `connector "${this.name}" could not write to its source: ${(err as Error).message}`);
    }
    if (!Array.isArray(results) || results.length !== items.length) {
      return refuse(502, `connector "${this.name}" answered the write-back with the wrong number of results`);
    }
    return results;
  }

  // ConnectorContext

  submit(points: readonly SourcePoint[], messages: number, bytes: number): boolean {
    if (this.stopping) {
      this.count("dropped", messages, "connector stopping");
      return false;
    }
    if (points.length === 0) return !this.queue.aboveHighWater;
    const batch: QueuedBatch = { kind: "points", points, messages, bytes };
    if (!this.queue.offer(batch)) {
      // A fixed reason, so a flood of drops is one burst of log lines; the queue gauges give the figures.
      this.count("dropped", messages, "queue to the write path full");
      return false;
    }
    this.kick();
    return !this.queue.aboveHighWater;
  }

  drained(): Promise<void> {
    return this.queue.drained();
  }

  applyModel(change: Partial<ModelDocument>): Promise<void> {
    return this.deps.modelWrites.apply(this.name, change);
  }

  readModel(objectIds: readonly string[], typeIds: readonly string[]) {
    return this.deps.modelWrites.read(objectIds, typeIds);
  }

  async removeModel(elementIds: readonly string[]): Promise<string[]> {
    // The points submitted before are written first: none of them then lands after the removal (refused,
    // its element gone) or in an object the source creates again later under the same id.
    await new Promise<void>((resolve) => {
      this.queue.mark({ kind: "flush", done: resolve });
      this.kick();
    });
    return traceConnectorBatch(this.name, { "connector.removed": elementIds.length }, () =>
      this.deps.modelWrites.remove(this.name, elementIds),
    );
  }

  count(outcome: MessageOutcome, n = 1, reason?: string): void {
    const counter = this.counters[outcome];
    if (counter === undefined || !(n > 0)) return;
    counter.inc(n);
    if (reason !== undefined && (outcome === "invalid" || outcome === "dropped")) {
      this.bursts.write(
        `${outcome}:${reason}`,
        "warn",
        { outcome, reason, messages: n },
        `Messages ${outcome}`,
        {
          outcome,
          reason,
        },
      );
    }
  }

  setState(state: "up" | "down", detail?: string, atUs?: number): void {
    if (this.stopping || this.lease === undefined) return;
    const was = this.state;
    this.state = state;
    this.detail = state === "up" ? undefined : detail;
    connectorUp.set({ connector: this.name }, state === "up" ? 1 : 0);
    if (state === "down" && was !== "down") {
      this.log.warn({ detail }, "Source lost; marking the connector's elements");
      this.markLoss(atUs ?? nowUs());
    } else if (state === "up" && was !== "up") {
      this.log.info("Source reachable");
    }
  }

  /** Queued behind the points already submitted, so none of them can undo it. */
  private markLoss(atUs: number): void {
    this.queue.mark({ kind: "loss", atUs });
    this.kick();
  }

  /**
   * Starts draining unless a drain is running (it takes whatever is queued before it ends). The drain
   * starts after the event loop's current I/O callbacks: the write path can run to the store without
   * yielding, so a drain started at once would write every message in a transaction of its own, while
   * waiting for the I/O phase to finish lets the messages that arrived together share one. A store
   * transaction costs mostly per page it touches, and points of many series spread over many pages, so
   * this is where a busy connector's throughput comes from; an idle one waits only until the end of the
   * current loop iteration.
   */
  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    this.drainLoop = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  reconnected(): void {
    connectorReconnects.inc({ connector: this.name });
  }

  // Leadership and lifecycle

  private async run(): Promise<void> {
    let announcedStandby = false;
    while (!this.stopping) {
      let lease: LeaderLease | undefined;
      try {
        lease = await this.deps.election.tryAcquire(`connector:${this.name}`);
      } catch (err) {
        this.bursts.write(
          "leadership",
          "warn",
          { exception: err },
          "Cannot ask for the connector's leadership",
        );
      }
      if (lease === undefined) {
        if (!announcedStandby) {
          this.log.info("Standby: another replica runs this connector");
          announcedStandby = true;
        }
        this.setStandby();
        await this.sleep(this.timing.standbyRetryMs);
        continue;
      }
      announcedStandby = false;
      this.lease = lease;
      const reason = await this.lead(lease);
      this.lease = undefined;
      if (!this.stopping) this.log.warn({ reason }, "Leadership lost; the connector stopped here");
    }
    this.state = "stopped";
    connectorUp.remove({ connector: this.name });
  }

  /** Runs the connector while this replica holds `lease`; returns why it stopped. */
  private async lead(lease: LeaderLease): Promise<string> {
    let lost: string | undefined;
    lease.lost.then((reason) => {
      lost = reason;
      this.wakeLoop();
    });
    const interrupted = Promise.race([this.halted, lease.lost.then(() => {})]);
    this.log.info("Leading: starting the connector");
    let failures = 0;
    while (!this.stopping && lost === undefined) {
      this.state = "starting";
      this.detail = undefined;
      connectorUp.set({ connector: this.name }, 0);
      let connector: Connector | undefined;
      // A kind whose create or start throws at once fails like one whose start rejects: retried, not fatal.
      const starting = (async () => {
        connector = this.kind.create(this.settings);
        this.connector = connector;
        await connector.start(this);
      })();
      // A start still pending when the server stops or the leadership goes is abandoned (stop() follows).
      starting.catch(() => {});
      let started: boolean;
      try {
        started = await Promise.race([starting.then(() => true), interrupted.then(() => false)]);
      } catch (err) {
        failures++;
        const delay = Math.min(this.timing.restartMaxMs, 1000 * 2 ** (failures - 1));
        this.state = "down";
        this.detail = `could not start: ${(err as Error).message}`;
        this.log.error({ exception: err, retry_in_ms: delay }, "Connector could not start");
        // Values stored by an earlier run must not look live while the source cannot even be started.
        if (failures === 1) this.markLoss(nowUs());
        await connector?.stop().catch(() => {});
        this.connector = undefined;
        await this.sleep(delay);
        continue;
      }
      failures = 0;
      if (!started || connector === undefined) {
        if (connector !== undefined) await this.stopConnector(connector);
        break;
      }
      // Runs until the server stops or the leadership goes.
      while (!this.stopping && lost === undefined) await this.sleep(60_000);
      await this.stopConnector(connector);
    }
    await lease.release();
    this.setStandby();
    return lost ?? "stopping";
  }

  private async stopConnector(connector: Connector): Promise<void> {
    try {
      await connector.stop();
    } catch (err) {
      this.log.warn({ exception: err }, "Connector did not stop cleanly");
    }
    this.connector = undefined;
    // What it submitted before it stopped still goes to the store.
    await this.drainLoop;
  }

  private setStandby(): void {
    this.state = "standby";
    this.detail = undefined;
    connectorUp.remove({ connector: this.name });
  }

  /** Waits `ms`, or less when `wakeLoop` is called (stopping, leadership lost). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      this.wakeLoop = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  // Draining into the write path

  private async drain(): Promise<void> {
    try {
      let failures = 0;
      while (this.queue.length > 0) {
        const entries = this.queue.take(BATCH_POINTS);
        for (;;) {
          try {
            await this.write(entries);
            failures = 0;
            break;
          } catch (err) {
            failures++;
            const delay = Math.min(this.timing.writeRetryMaxMs, 100 * 2 ** (failures - 1));
            this.bursts.write(
              "write-failed",
              "warn",
              { exception: err, retry_in_ms: delay },
              "Could not store the connector's points; retrying",
            );
            if (this.stopping && failures > 3) {
              // Shutting down with the store gone: what is left cannot be written; count it rather than wait.
              const left = [...entries, ...this.queue.clear()];
              const messages = left.reduce((n, e) => n + (e.kind === "points" ? e.messages : 0), 0);
              this.count("dropped", messages, "store unavailable while stopping");
              break;
            }
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
        }
        this.queue.release(entries);
      }
    } finally {
      // In the same turn as the last look at the queue: a submit right after it starts a new drain.
      this.draining = false;
    }
  }

  /** Writes the taken entries; throws (to be retried) when the store could not take them. */
  private async write(entries: readonly QueueEntry[]): Promise<void> {
    const first = entries[0];
    if (first.kind === "flush") {
      first.done();
      return;
    }
    if (first.kind === "loss") {
      const marked = await traceConnectorBatch(this.name, { "connector.loss": true }, () =>
        this.deps.writes.markLost(this.name, this.settings.onLoss, first.atUs),
      );
      this.log.info(
        { elements: marked, quality: this.settings.onLoss },
        "Elements marked for the lost source",
      );
      return;
    }
    const batches = entries as readonly QueuedBatch[];
    const points = batches.length === 1 ? batches[0].points : batches.flatMap((b) => b.points);
    const results = await traceConnectorBatch(this.name, { "connector.points": points.length }, () =>
      this.deps.writes.ingest(this.name, points),
    );
    const full = results.find((r) => !r.success && r.responseDetail.status === 507);
    if (full !== undefined && !full.success) throw new Error(full.responseDetail.detail);
    const storedUs = nowUs();
    let at = 0;
    for (const batch of batches) {
      const mine = results.slice(at, at + batch.points.length);
      this.account(batch, mine, storedUs);
      at += batch.points.length;
    }
  }

  /** A message counts as stored when any of its points was; as invalid when none was. */
  private account(batch: QueuedBatch, results: readonly WriteResult[], storedUs: number): void {
    let stored = 0;
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      if (r.success) {
        stored++;
        const p = batch.points[i];
        if (!p.historical) this.lag.observe(Math.max(0, storedUs - p.tsUs) / 1e6);
      } else {
        this.bursts.write(
          `rejected:${r.responseDetail.status}`,
          "warn",
          { element_id: r.id, status: r.responseDetail.status, reason: r.responseDetail.detail },
          "Point rejected by the write path",
        );
      }
    }
    if (stored > 0) this.count("stored", batch.messages);
    else this.count("invalid", batch.messages, "every point of the message was rejected by the write path");
  }
}
