import { createHash } from "node:crypto";
import { builtInRelationshipTypes, I3X_NAMESPACE } from "../../domain/model.js";
import { nowUs } from "../../domain/time.js";
import type {
  Connector,
  ConnectorContext,
  ConnectorHealth,
  ConnectorKind,
  ConnectorSettings,
  SourcePoint,
  WriteBackItem,
  WriteBackResult,
} from "../connector.js";
import { brokerOptionsProblems, connectionOptions, refusedAsTooLarge } from "./broker-options.js";
import { MqttConnection, type MqttMessage, type MqttSubscription } from "./connection.js";
import { escapeIdPart } from "./element-ids.js";
import { compileRules, MqttMapper, ruleProblems } from "./mapper.js";
import { MQTT_OPTIONS_SCHEMA, type MqttOptions } from "./options.js";

const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;
const DEFAULT_MAX_ELEMENTS = 1_000_000;
const DEFAULT_SESSION_EXPIRY_S = 86_400;
/** Points (or payload bytes) after which pending points are submitted without waiting for the turn's end. */
const FLUSH_POINTS = 2000;
const FLUSH_BYTES = 1024 * 1024;
/** Payloads up to this size are remembered as they are; larger ones by their SHA-1. */
const REMEMBER_WHOLE_BYTES = 40;

/** `kind: mqtt`: JSON payloads on plain MQTT topics (a Unified Namespace), mapped by rules. */
export const mqttConnectorKind: ConnectorKind = {
  kind: "mqtt",
  optionsSchema: MQTT_OPTIONS_SCHEMA,
  check(options) {
    const o = options as unknown as MqttOptions;
    return [...ruleProblems(o), ...brokerOptionsProblems(o)];
  },
  create: (settings) => new MqttConnector(settings),
};

export class MqttConnector implements Connector {
  readonly name: string;
  private readonly options: MqttOptions;
  private readonly namespaceUri: string;
  private readonly folderTypeId: string;
  private readonly maxPayloadBytes: number;
  private readonly rules;
  private mapper: MqttMapper | undefined;
  private connection: MqttConnection | undefined;
  private context: ConnectorContext | undefined;
  private state: ConnectorHealth = { state: "starting" };
  /**
   * The last payload of each topic, so that a retained message redelivered on resubscribe, or a QoS 1
   * redelivery (`dup`), of what was already processed adds no second point. Bounded like the elements.
   */
  private readonly lastPayload = new Map<string, string>();
  private lastReceivedUs = 0;
  private pending: SourcePoint[] = [];
  private pendingMessages = 0;
  private pendingBytes = 0;
  private flushScheduled = false;
  /** Set while the queue is above its high-water mark: the next message waits for it. */
  private paused: Promise<void> | undefined;

  /** Throws a RuleError naming the rule and field when a template, pattern or path is malformed. */
  constructor(readonly settings: ConnectorSettings) {
    this.name = settings.name;
    this.options = settings.options as unknown as MqttOptions;
    this.namespaceUri = this.options.namespaceUri ?? `urn:i3xd:mqtt:${encodeURIComponent(settings.name)}`;
    // `#` never occurs in a topic level, so this id cannot meet a type inferred from one.
    this.folderTypeId = `${escapeIdPart(settings.name)}#TopicLevel`;
    this.maxPayloadBytes = this.options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.rules = compileRules(this.options);
  }

  async start(context: ConnectorContext): Promise<void> {
    this.context = context;
    const declared = this.options.types ?? [];
    this.mapper = new MqttMapper(
      this.rules,
      {
        connector: this.name,
        namespaceUri: this.namespaceUri,
        folderTypeId: this.folderTypeId,
        maxElements: this.options.maxElements ?? DEFAULT_MAX_ELEMENTS,
        lookUpUnknown: context.readModel !== undefined,
      },
      new Set(declared.map((t) => t.elementId)),
    );
    await context.applyModel({
      namespaces: [
        { uri: I3X_NAMESPACE, displayName: "i3X" },
        { uri: this.namespaceUri, displayName: `MQTT ${this.name}` },
      ],
      relationshipTypes: builtInRelationshipTypes(),
      objectTypes: [
        {
          elementId: this.folderTypeId,
          displayName: "TopicLevel",
          namespaceUri: this.namespaceUri,
          // A level may later carry a value of its own; a folder never refuses it.
          schema: {},
        },
        ...declared.map((t) => ({
          elementId: t.elementId,
          displayName: t.displayName ?? t.elementId,
          namespaceUri: this.namespaceUri,
          schema: t.schema,
        })),
      ],
    });

    const o = this.options;
    this.connection = new MqttConnection(
      {
        ...connectionOptions(o, {
          clientId: `i3xd-${this.name}`,
          protocolVersion: 5,
          clean: o.clean ?? true,
        }),
        // MQTT 5 ends a session at disconnect unless told otherwise, which would make `clean: false` moot.
        sessionExpirySeconds:
          o.sessionExpirySeconds ?? (o.clean === false ? DEFAULT_SESSION_EXPIRY_S : undefined),
      },
      {
        message: (message) => this.onMessage(message),
        state: (up, detail, reconnect) => {
          if (up) {
            this.state = { state: "up" };
            context.setState("up", detail);
            if (reconnect) context.reconnected();
          } else {
            this.state = { state: "down", detail };
            // Points received before the loss go ahead of the loss marking, never after it.
            this.flush();
            context.setState("down", detail, nowUs());
          }
        },
      },
    );
    this.connection.start(this.subscriptions());
  }

  async stop(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    this.state = { state: "stopped" };
    await connection?.stop();
    this.flush();
  }

  health(): ConnectorHealth {
    return this.state;
  }

  async write(items: readonly WriteBackItem[]): Promise<WriteBackResult[]> {
    return Promise.all(items.map((item) => this.writeOne(item)));
  }

  /** The rules' topic filters (or the configured ones), each once, with the highest QoS asked for it. */
  private subscriptions(): MqttSubscription[] {
    const qos = this.options.qos ?? 1;
    if (this.options.subscriptions) {
      const byFilter = new Map<string, MqttSubscription>();
      for (const s of this.options.subscriptions) {
        const wanted = typeof s === "string" ? { topic: s, qos } : { topic: s.topic, qos: s.qos ?? qos };
        byFilter.set(wanted.topic, wanted);
      }
      return [...byFilter.values()];
    }
    const byFilter = new Map<string, MqttSubscription>();
    for (const rule of this.rules) {
      const known = byFilter.get(rule.pattern.filter);
      if (!known || known.qos < rule.qos)
        byFilter.set(rule.pattern.filter, { topic: rule.pattern.filter, qos: rule.qos });
    }
    return [...byFilter.values()];
  }

  private async writeOne(item: WriteBackItem): Promise<WriteBackResult> {
    const topic = item.source;
    const routed = typeof topic === "string" ? this.mapper?.route(topic) : null;
    if (!routed?.rule.writable || routed.rule.composition)
      return {
        ok: false,
        status: 403,
        detail: `${item.elementId} is read-only: no rule of connector ${this.name} with writable: true maps it`,
      };
    const connection = this.connection;
    if (!connection?.connected)
      return { ok: false, status: 503, detail: `connector ${this.name} is not connected to its broker` };
    const commandTopic = routed.rule.commandTopic.text(routed.values);
    try {
      await connection.publish(commandTopic, JSON.stringify(item.value), 1, routed.rule.commandRetain);
      return { ok: true };
    } catch (err) {
      return {
        ok: false,
        status: 503,
        detail: `the broker did not take the value for ${commandTopic}: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
  }

  /** Never throws: a message that cannot be mapped is counted and logged, and the next one is read. */
  private async onMessage(message: MqttMessage): Promise<void> {
    const context = this.context;
    const mapper = this.mapper;
    if (!context || !mapper || !this.connection) return;
    if (this.paused) await this.paused;
    context.count("received");
    if (refusedAsTooLarge(context, message.payload, this.maxPayloadBytes)) return;
    if (this.seenBefore(message)) return;
    try {
      const receivedUs = this.receiveTime();
      let mapped = mapper.map(message.topic, message.payload, receivedUs);
      if (mapped.outcome === "lookup" && context.readModel) {
        const found = await context.readModel(mapped.objectIds, mapped.typeIds);
        mapper.learn(found.objects, found.objectTypes, mapped);
        mapped = mapper.map(message.topic, message.payload, receivedUs);
      }
      switch (mapped.outcome) {
        case "unmatched":
          context.count("unmatched");
          return;
        case "ignored":
          return;
        case "invalid":
          context.count("invalid", 1, `${message.topic}: ${mapped.reason}`);
          return;
        case "lookup":
          context.count("invalid", 1, `${message.topic}: model lookup did not settle`);
          return;
      }
      if (mapped.model) {
        await context.applyModel(mapped.model);
        mapped.commit();
      }
      this.enqueue(mapped.points, message.payload.length);
    } catch (err) {
      context.count("invalid", 1, `${message.topic}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * Collects the points of the messages handled in one turn of the event loop and submits them together:
   * the write path then stores them in one transaction instead of one per message.
   */
  private enqueue(points: readonly SourcePoint[], bytes: number): void {
    for (const p of points) this.pending.push(p);
    this.pendingMessages++;
    this.pendingBytes += bytes;
    if (this.pending.length >= FLUSH_POINTS || this.pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Submits what is pending; a full queue pauses reading (the next message waits) until it drains. */
  private flush(): void {
    const context = this.context;
    if (!context || this.pendingMessages === 0) return;
    const points = this.pending;
    const messages = this.pendingMessages;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingMessages = 0;
    this.pendingBytes = 0;
    if (!context.submit(points, messages, bytes) && !this.paused) {
      this.paused = context.drained().finally(() => {
        this.paused = undefined;
      });
    }
  }

  /**
   * The receive time, strictly increasing per connector: the clock counts milliseconds, and a burst (a
   * backlog after a pause, a session's queue after a takeover) delivers many messages of one topic within
   * one; history keeps one point per element and timestamp, so equal times would merge them.
   */
  private receiveTime(): number {
    this.lastReceivedUs = Math.max(nowUs(), this.lastReceivedUs + 1);
    return this.lastReceivedUs;
  }

  private seenBefore(message: MqttMessage): boolean {
    const payload = message.payload;
    const key =
      payload.length <= REMEMBER_WHOLE_BYTES
        ? payload.toString("latin1")
        : createHash("sha1").update(payload).digest("base64");
    const last = this.lastPayload.get(message.topic);
    if ((message.retained || message.dup) && last === key) return true;
    if (last === undefined && this.lastPayload.size >= (this.options.maxElements ?? DEFAULT_MAX_ELEMENTS))
      return false;
    this.lastPayload.set(message.topic, key);
    return false;
  }
}
