import type {
  ConnectorContext,
  ConnectorSettings,
  MessageOutcome,
  SourcePoint,
} from "../../src/connectors/connector.js";
import type { ModelDocument } from "../../src/model/format.js";
import { getLogger } from "../../src/observability/logger.js";

/**
 * The framework's side of the connector contract, recording what a connector hands over (points in order,
 * model pieces, counts, state changes) and able to hold the queue full. Those are what the contract
 * promises and what the HTTP API cannot show one by one (when reading pauses, which state call came when).
 */
export class RecordingContext implements ConnectorContext {
  readonly log = getLogger("test.connector");
  readonly points: SourcePoint[] = [];
  readonly models: Partial<ModelDocument>[] = [];
  /** By outcome, or `outcome: reason` when the connector gave a reason. */
  readonly counts = new Map<string, number>();
  readonly states: { state: "up" | "down"; detail?: string }[] = [];
  reconnects = 0;
  /** While set, `submit` answers "full" and `drained` waits for this promise. */
  private hold: { promise: Promise<void>; release(): void } | undefined;

  constructor(
    readonly settings: ConnectorSettings,
    readonly dataDir = "/nonexistent",
  ) {}

  submit(points: readonly SourcePoint[]): boolean {
    this.points.push(...points);
    return this.hold === undefined;
  }
  drained(): Promise<void> {
    return this.hold?.promise ?? Promise.resolve();
  }
  async applyModel(change: Partial<ModelDocument>): Promise<void> {
    this.models.push(change);
  }
  async removeModel(): Promise<string[]> {
    throw new Error(`the ${this.settings.kind} connector removes nothing from the model`);
  }
  count(outcome: MessageOutcome, n = 1, reason?: string): void {
    const key = reason ? `${outcome}: ${reason}` : outcome;
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  setState(state: "up" | "down", detail?: string): void {
    this.states.push({ state, detail });
  }
  reconnected(): void {
    this.reconnects++;
  }

  /** The sum of the counts whose key starts with `prefix` (an outcome, or an outcome and a reason). */
  countsStarting(prefix: string): number {
    let n = 0;
    for (const [key, value] of this.counts) if (key.startsWith(prefix)) n += value;
    return n;
  }
  /** The last point handed over for `elementId`. */
  last(elementId: string): SourcePoint | undefined {
    return this.points.findLast((p) => p.elementId === elementId);
  }
  /** The objects of the last model piece applied. */
  objects() {
    return this.models.at(-1)?.objects ?? [];
  }
  holdQueue(): void {
    let release = () => {};
    const promise = new Promise<void>((r) => {
      release = r;
    });
    this.hold = { promise, release };
  }
  releaseQueue(): void {
    const hold = this.hold;
    this.hold = undefined;
    hold?.release();
  }
}
