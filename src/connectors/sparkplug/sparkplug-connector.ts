import type {
  Connector,
  ConnectorContext,
  ConnectorHealth,
  ConnectorKind,
  ConnectorSettings,
  WriteBackItem,
  WriteBackResult,
} from "../connector.js";
import {
  BROKER_OPTIONS_PROPERTIES,
  type BrokerOptions,
  brokerOptionsProblems,
  connectionOptions,
  refusedAsTooLarge,
} from "../mqtt/broker-options.js";
import { MqttConnection, type MqttMessage, type MqttSubscription } from "../mqtt/connection.js";
import { type CommandMetric, encodeCommand } from "./codec.js";
import { DATATYPE_NAMES, TEMPLATE, writeValue } from "./datatypes.js";
import { type HostEffects, type RebirthReason, SparkplugHost, type WriteTarget } from "./host.js";
import { SparkplugIds } from "./ids.js";
import { sparkplugEdgeNodes, sparkplugRebirthRequests, sparkplugSequenceGaps } from "./metrics.js";

/** `options` of a `kind: sparkplug` connector (docs/connectors.md, "Sparkplug B"). */
export interface SparkplugOptions extends BrokerOptions {
  /** Sparkplug groups to host; all (`spBv1.0/#`) when absent. */
  groups?: string[];
  /** Publish `spBv1.0/STATE/<id>` as the primary host application. Off by default. */
  primaryHostId?: string;
  /** How long a missing sequence number is waited for before a rebirth is requested. */
  reorderTimeoutMs?: number;
  /** At most one rebirth request per edge node within this time. */
  rebirthMinIntervalMs?: number;
  /** Writes to metrics send NCMD/DCMD; without it every write answers 403. */
  writable?: boolean;
  /**
   * Remove the metrics (and the folders they leave empty) that a later birth no longer lists, history
   * included; a rebirth that lists them again creates them anew. Off by default: they stay, `Bad`.
   */
  removeDroppedMetrics?: boolean;
  /** Put in front of every element id, for two brokers whose group names may meet. */
  idPrefix?: string;
  maxEdgeNodes?: number;
  maxMetricsPerEdgeNode?: number;
}

const NAME = { type: "string", minLength: 1, maxLength: 256, pattern: "^[^/+#]+$" };

/** JSON schema (draft-07) of `options` for `kind: sparkplug`. */
export const SPARKPLUG_OPTIONS_SCHEMA: Record<string, unknown> = {
  type: "object",
  additionalProperties: false,
  required: ["url"],
  properties: {
    ...BROKER_OPTIONS_PROPERTIES,
    groups: { type: "array", minItems: 1, items: NAME },
    primaryHostId: NAME,
    reorderTimeoutMs: { type: "integer", minimum: 0, maximum: 600000 },
    rebirthMinIntervalMs: { type: "integer", minimum: 0, maximum: 3600000 },
    writable: { type: "boolean" },
    removeDroppedMetrics: { type: "boolean" },
    idPrefix: { type: "string", maxLength: 128, pattern: "^\\S*$" },
    maxEdgeNodes: { type: "integer", minimum: 1 },
    maxMetricsPerEdgeNode: { type: "integer", minimum: 1 },
  },
};

export const sparkplugConnectorKind: ConnectorKind = {
  kind: "sparkplug",
  optionsSchema: SPARKPLUG_OPTIONS_SCHEMA,
  check: (options) => brokerOptionsProblems(options as unknown as BrokerOptions),
  create: (settings) => new SparkplugConnector(settings),
};

const DEFAULT_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024;
const REBIRTH_REASONS: readonly (RebirthReason | "reconnect")[] = [
  "data_before_birth",
  "unknown_alias",
  "sequence_gap",
  "reconnect",
];
const REBIRTH_METRIC: CommandMetric = { name: "Node Control/Rebirth", datatype: 11, value: true };

/**
 * The command metric for a checked value: by alias when the birth gave one (Sparkplug's compact form),
 * by name otherwise. A template member goes as its instance carrying a Template value with only that
 * member (nested down the path), as Sparkplug writes members.
 */
function commandMetric(target: WriteTarget, value: unknown): CommandMetric {
  const named = target.alias !== undefined ? { alias: target.alias } : { name: target.name };
  const members = target.members ?? [];
  if (members.length === 0) return { ...named, datatype: target.datatype, value };
  let inner: unknown = value;
  let innerType = DATATYPE_NAMES[target.datatype];
  for (let i = members.length - 1; i >= 0; i--) {
    const templateRef = i === 0 ? target.templateRef : members[i - 1].templateRef;
    inner = {
      isDefinition: false,
      ...(templateRef !== undefined ? { templateRef } : {}),
      metrics: [{ name: members[i].name, type: innerType, value: inner }],
    };
    innerType = DATATYPE_NAMES[TEMPLATE];
  }
  return { ...named, datatype: TEMPLATE, value: inner };
}

/**
 * A Sparkplug B host application: subscribes to the groups' topics with QoS 1 and a clean session, turns
 * births into the model and data into points (SparkplugHost), asks edge nodes to rebirth when it lost
 * track of them, and writes back with NCMD/DCMD.
 */
export class SparkplugConnector implements Connector {
  readonly name: string;
  private readonly options: SparkplugOptions;
  private readonly host: SparkplugHost;
  private readonly maxPayloadBytes: number;
  private readonly rebirthMinIntervalMs: number;
  private readonly lastRebirth = new Map<string, number>();
  private context: ConnectorContext | undefined;
  private connection: MqttConnection | undefined;
  private state: ConnectorHealth = { state: "starting" };
  /** Messages and reorder expiries are applied one at a time, in order. */
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  /** Timestamp of this run's STATE birth and of its Will, as Sparkplug 3.0 wants them equal. */
  private stateTimestamp = 0;

  constructor(readonly settings: ConnectorSettings) {
    this.name = settings.name;
    this.options = settings.options as unknown as SparkplugOptions;
    const o = this.options;
    this.maxPayloadBytes = o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.rebirthMinIntervalMs = o.rebirthMinIntervalMs ?? 5000;
    const maxEdgeNodes = o.maxEdgeNodes ?? 10_000;
    this.host = new SparkplugHost({
      ids: new SparkplugIds(o.idPrefix ?? ""),
      reorderTimeoutMs: o.reorderTimeoutMs ?? 2000,
      onDeath: settings.onLoss,
      removeDropped: o.removeDroppedMetrics === true,
      maxEdgeNodes,
      maxMetricsPerEdgeNode: o.maxMetricsPerEdgeNode ?? 100_000,
      maxReorderMessages: 256,
      maxReorderBytes: Math.max(this.maxPayloadBytes, 4 * 1024 * 1024),
    });
  }

  async start(context: ConnectorContext): Promise<void> {
    this.context = context;
    // Series from the start, so a rate, a panel or an alert is defined before the first rebirth or gap.
    for (const reason of REBIRTH_REASONS) sparkplugRebirthRequests.inc({ connector: this.name, reason }, 0);
    sparkplugSequenceGaps.inc({ connector: this.name }, 0);
    this.updateEdgeNodeGauge();
    const o = this.options;
    this.stateTimestamp = Date.now();
    const will = o.primaryHostId
      ? {
          topic: this.stateTopic(),
          payload: Buffer.from(this.statePayload(false)),
          qos: 1 as const,
          retain: true,
        }
      : undefined;
    this.connection = new MqttConnection(
      connectionOptions(o, { clientId: `i3xd-${this.name}`, protocolVersion: 5, clean: true }, will),
      {
        message: (message) => this.onMessage(message),
        state: (up, detail, reconnect) => this.onState(up, detail, reconnect),
      },
    );
    this.connection.start(this.subscriptions());
  }

  async stop(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (connection?.connected && this.options.primaryHostId) {
      // A clean disconnect sends no Will: say offline ourselves.
      await connection.publish(this.stateTopic(), this.statePayload(false), 1, true).catch(() => undefined);
    }
    await connection?.stop();
    await this.chain;
    this.state = { state: "stopped" };
    sparkplugEdgeNodes.remove({ connector: this.name, state: "online" });
    sparkplugEdgeNodes.remove({ connector: this.name, state: "offline" });
  }

  health(): ConnectorHealth {
    const counts = this.host.edgeNodeCounts();
    return { ...this.state, extra: { edgeNodesOnline: counts.online, edgeNodesOffline: counts.offline } };
  }

  async write(items: readonly WriteBackItem[]): Promise<WriteBackResult[]> {
    const results: WriteBackResult[] = new Array(items.length);
    if (this.options.writable !== true) {
      return items.map(() => ({
        ok: false,
        status: 403,
        detail: `connector ${this.name} does not write to edge nodes (options.writable is not true)`,
      }));
    }
    const byTopic = new Map<string, { indexes: number[]; metrics: CommandMetric[] }>();
    items.forEach((item, i) => {
      const target = this.host.writeTarget(item.source);
      if (!("topic" in target)) {
        results[i] = { ok: false, status: target.status, detail: target.detail };
        return;
      }
      const checked = writeValue(target.datatype, item.value);
      if (checked instanceof Error) {
        results[i] = { ok: false, status: 400, detail: checked.message };
        return;
      }
      let batch = byTopic.get(target.topic);
      if (!batch) {
        batch = { indexes: [], metrics: [] };
        byTopic.set(target.topic, batch);
      }
      batch.indexes.push(i);
      batch.metrics.push(commandMetric(target, checked.value));
    });
    await Promise.all(
      [...byTopic].map(async ([topic, batch]) => {
        let result: WriteBackResult = { ok: true };
        try {
          const connection = this.connection;
          if (!connection?.connected)
            throw new Error(`connector ${this.name} is not connected to its broker`);
          // Sparkplug sends commands with QoS 0 and never retained.
          await connection.publish(topic, Buffer.from(encodeCommand(batch.metrics, Date.now())), 0, false);
        } catch (err) {
          result = { ok: false, status: 503, detail: err instanceof Error ? err.message : String(err) };
        }
        for (const i of batch.indexes) results[i] = result;
      }),
    );
    return results;
  }

  private stateTopic(): string {
    return `spBv1.0/STATE/${this.options.primaryHostId}`;
  }

  private subscriptions(): MqttSubscription[] {
    const groups = this.options.groups;
    const topics = groups ? groups.map((g) => `spBv1.0/${g}/#`) : ["spBv1.0/#"];
    if (groups && this.options.primaryHostId) topics.push(this.stateTopic());
    return topics.map((topic) => ({ topic, qos: 1 }));
  }

  private onState(up: boolean, detail: string, reconnect: boolean): void {
    const context = this.context;
    if (!context) return;
    if (!up) {
      this.state = { state: "down", detail };
      context.setState("down", detail);
      return;
    }
    this.state = { state: "up" };
    context.setState("up", detail);
    if (this.options.primaryHostId) void this.publishOnline();
    if (reconnect) {
      context.reconnected();
      // What the nodes sent while we were away is lost (clean session): ask every known node to rebirth.
      this.enqueue(async () => this.rebirthAll("reconnect"));
    }
  }

  private async publishOnline(): Promise<void> {
    try {
      await this.connection?.publish(this.stateTopic(), this.statePayload(true), 1, true);
    } catch (err) {
      this.context?.log.warn({ err }, "Could not publish the primary host STATE");
    }
  }

  private onMessage(message: MqttMessage): Promise<void> {
    return this.enqueue(() => this.process(message));
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step).catch((err: unknown) => {
      this.context?.log.error({ err }, "Sparkplug message handling failed");
    });
    this.chain = next;
    return next;
  }

  private async process(message: MqttMessage): Promise<void> {
    const context = this.context;
    if (!context) return;
    context.count("received");
    if (refusedAsTooLarge(context, message.payload, this.maxPayloadBytes)) return;
    if (this.options.primaryHostId && message.topic === this.stateTopic()) {
      this.ownState(message.payload);
      return;
    }
    const fx = this.host.handle(message.topic, message.payload, Date.now());
    await this.applyEffects(fx, message.payload.length, message.topic);
  }

  /** The primary host's STATE message (Sparkplug 3.0): the same timestamp in its birth and its Will. */
  private statePayload(online: boolean): string {
    return JSON.stringify({ online, timestamp: this.stateTimestamp });
  }

  /** Another client said this host is offline while it is not: say online again (Sparkplug 3.0). */
  private ownState(payload: Buffer): void {
    let online: unknown;
    try {
      online = (JSON.parse(payload.toString("utf8")) as { online?: unknown }).online;
    } catch {
      online = undefined;
    }
    // Not awaited: messages are handled one at a time, and the broker sends our own STATE back to us
    // before the PUBACK, so waiting here for the acknowledgement would wait for ourselves.
    if (online !== true && this.connection?.connected) void this.publishOnline();
  }

  private async applyEffects(fx: HostEffects, bytes: number, topic?: string): Promise<void> {
    const context = this.context;
    if (!context) return;
    if (fx.invalid !== undefined)
      context.count("invalid", 1, topic ? `${fx.invalid} (${topic})` : fx.invalid);
    if (fx.unmatched) context.count("unmatched");
    if (fx.skipped.length > 0)
      context.log.warn(
        { topic, skipped: fx.skipped.length, metrics: fx.skipped.slice(0, 5) },
        "Birth metrics left out: their element ids would be longer than 512 characters",
      );
    if (fx.sequenceGaps > 0) sparkplugSequenceGaps.inc({ connector: this.name }, fx.sequenceGaps);
    let modelFailed = false;
    if (fx.model) {
      try {
        await context.applyModel(fx.model);
      } catch (err) {
        modelFailed = true;
        this.host.forgetAnnounced();
        const reason = `model change refused: ${err instanceof Error ? err.message : String(err)}`;
        context.count("dropped", 1, topic ? `${reason} (${topic})` : reason);
      }
    }
    let points = fx.points;
    if (fx.removed.length > 0 && !(await this.removeDropped(context, fx.removed, topic)))
      points = [...fx.removedAsBad, ...points];
    if (points.length > 0 && !modelFailed) {
      if (!context.submit(points, 1, bytes)) await context.drained();
    }
    for (const r of fx.rebirths) this.requestRebirth(r.group, r.edgeNode, r.reason);
    this.updateEdgeNodeGauge();
    this.schedule();
  }

  /**
   * Removes what a birth no longer lists; false when the store refused. Tried even when the birth's model
   * was refused: what the edge node dropped is gone either way. The host forgets dropped metrics at the
   * birth, so a failed removal is not tried again: the caller stores them `Bad` instead, as without
   * `removeDroppedMetrics`, rather than leave them looking live.
   */
  private async removeDropped(
    context: ConnectorContext,
    ids: readonly string[],
    topic: string | undefined,
  ): Promise<boolean> {
    try {
      const removed = await context.removeModel(ids);
      if (removed.length > 0)
        context.log.info(
          { topic, removed: removed.length, elements: removed.slice(0, 5) },
          "Removed the metrics a birth no longer lists",
        );
      return true;
    } catch (err) {
      context.log.warn(
        { err, topic, elements: ids.slice(0, 5) },
        "Could not remove the metrics a birth no longer lists; marking them Bad",
      );
      return false;
    }
  }

  private requestRebirth(group: string, edgeNode: string, reason: RebirthReason | "reconnect"): void {
    const key = `${group}/${edgeNode}`;
    const now = Date.now();
    const last = this.lastRebirth.get(key);
    if (last !== undefined && now - last < this.rebirthMinIntervalMs) return;
    const connection = this.connection;
    if (!connection?.connected) return;
    this.lastRebirth.delete(key);
    this.lastRebirth.set(key, now);
    // Bounded like the edge nodes: the oldest entry goes first (Map keeps insertion order).
    if (this.lastRebirth.size > (this.options.maxEdgeNodes ?? 10_000)) {
      const oldest = this.lastRebirth.keys().next().value;
      if (oldest !== undefined) this.lastRebirth.delete(oldest);
    }
    sparkplugRebirthRequests.inc({ connector: this.name, reason });
    this.context?.log.info({ group, edgeNode, reason }, "Requesting a rebirth");
    // Not awaited, like every publish made while a message is handled (see ownState).
    connection
      .publish(
        `spBv1.0/${group}/NCMD/${edgeNode}`,
        Buffer.from(encodeCommand([REBIRTH_METRIC], now)),
        0,
        false,
      )
      .catch((err: unknown) =>
        this.context?.log.warn({ err, group, edgeNode }, "Could not send a rebirth request"),
      );
  }

  private rebirthAll(reason: "reconnect"): void {
    for (const { group, edgeNode } of this.host.edgeNodes()) this.requestRebirth(group, edgeNode, reason);
  }

  /** Runs the host's reorder expiry when its earliest wait runs out. */
  private schedule(): void {
    const deadline = this.host.nextDeadline();
    if (deadline === undefined || (this.timerAt !== undefined && this.timerAt <= deadline)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = undefined;
        if (!this.connection) return;
        this.enqueue(() => this.applyEffects(this.host.expire(Date.now()), 0));
      },
      Math.max(0, deadline - Date.now()),
    );
    this.timer.unref();
  }

  private updateEdgeNodeGauge(): void {
    const counts = this.host.edgeNodeCounts();
    sparkplugEdgeNodes.set({ connector: this.name, state: "online" }, counts.online);
    sparkplugEdgeNodes.set({ connector: this.name, state: "offline" }, counts.offline);
  }
}
