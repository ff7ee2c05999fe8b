import { randomUUID } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import sparkplugPayload from "sparkplug-payload";
import type { UMetric, UPayload } from "sparkplug-payload/lib/sparkplugbpayload.js";

export const BROKER_URL = process.env.I3XD_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";

const codec = sparkplugPayload.get("spBv1.0");
if (!codec) throw new Error("sparkplug-payload does not know spBv1.0");
export const sparkplug = codec;

export type Metric = Partial<UMetric> & { type: UMetric["type"] };

/**
 * An instance of the tests' `Pump` template (members Speed and Running) as a birth carries it; each test
 * defines the template itself, as what its definition holds is what that test looks at.
 */
export function pumpInstance(name: string, alias: number): Metric {
  return {
    name,
    alias,
    type: "Template",
    value: {
      templateRef: "Pump",
      isDefinition: false,
      metrics: [
        { name: "Speed", type: "Int32", value: 1450 },
        { name: "Running", type: "Boolean", value: true },
      ],
    },
  } as Metric;
}

/** A group id no other test run uses, so runs never see each other's births. */
export function uniqueGroup(prefix = "i3xd-test"): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export interface ReceivedCommand {
  topic: string;
  payload: UPayload;
}

/**
 * A Sparkplug B edge node for tests, made of `mqtt` and `sparkplug-payload` as a real one would be: its
 * NDEATH is the MQTT Will (with the session's bdSeq), births carry seq 0 and bdSeq, every later message the
 * next seq (wrapping at 256), and the commands it receives (NCMD/DCMD) are decoded and kept.
 */
export class TestEdgeNode {
  readonly commands: ReceivedCommand[] = [];
  bdSeq = 0;
  private seq = 0;
  private client: MqttClient | undefined;

  constructor(
    readonly group: string,
    readonly edgeNode: string,
    private readonly url = BROKER_URL,
  ) {}

  get nodeTopic(): string {
    return `${this.group}/${this.edgeNode}`;
  }

  /** Connects with the NDEATH Will of bdSeq `bdSeq` and subscribes to this node's commands. */
  async connect(bdSeq = this.bdSeq): Promise<void> {
    this.bdSeq = bdSeq;
    const will = Buffer.from(
      sparkplug.encodePayload({
        timestamp: Date.now(),
        metrics: [{ name: "bdSeq", type: "UInt64", value: bdSeq }],
      }),
    );
    const client = await mqtt.connectAsync(this.url, {
      clientId: `edge-${this.edgeNode}-${randomUUID().slice(0, 8)}`,
      clean: true,
      reconnectPeriod: 0,
      will: { topic: `spBv1.0/${this.group}/NDEATH/${this.edgeNode}`, payload: will, qos: 1, retain: false },
    });
    client.on("message", (topic, payload) => {
      try {
        this.commands.push({ topic, payload: sparkplug.decodePayload(payload) });
      } catch {
        this.commands.push({ topic, payload: { metrics: [] } });
      }
    });
    await client.subscribeAsync([
      `spBv1.0/${this.group}/NCMD/${this.edgeNode}`,
      `spBv1.0/${this.group}/DCMD/${this.edgeNode}/+`,
    ]);
    this.client = client;
  }

  /** NBIRTH (seq 0) with bdSeq and `Node Control/Rebirth` added to `metrics`. */
  async birth(metrics: Metric[], timestamp = Date.now()): Promise<void> {
    this.seq = 0;
    await this.publish(`spBv1.0/${this.group}/NBIRTH/${this.edgeNode}`, {
      timestamp,
      seq: 0,
      metrics: [
        { name: "bdSeq", type: "UInt64", value: this.bdSeq },
        { name: "Node Control/Rebirth", type: "Boolean", value: false },
        ...metrics,
      ] as UMetric[],
    });
  }

  async deviceBirth(device: string, metrics: Metric[], timestamp = Date.now()): Promise<void> {
    await this.publish(`spBv1.0/${this.group}/DBIRTH/${this.edgeNode}/${device}`, {
      timestamp,
      seq: this.nextSeq(),
      metrics: metrics as UMetric[],
    });
  }

  /** NDATA (no device) or DDATA with the next seq, or with `seq` given to make a gap. */
  async data(
    metrics: Metric[],
    device?: string,
    options: { seq?: number; timestamp?: number } = {},
  ): Promise<void> {
    const topic = device
      ? `spBv1.0/${this.group}/DDATA/${this.edgeNode}/${device}`
      : `spBv1.0/${this.group}/NDATA/${this.edgeNode}`;
    await this.publish(topic, {
      timestamp: options.timestamp ?? Date.now(),
      seq: options.seq ?? this.nextSeq(),
      metrics: metrics as UMetric[],
    });
  }

  async deviceDeath(device: string, timestamp = Date.now()): Promise<void> {
    await this.publish(`spBv1.0/${this.group}/DDEATH/${this.edgeNode}/${device}`, {
      timestamp,
      seq: this.nextSeq(),
      metrics: [],
    });
  }

  /** An NDEATH as another (older) connection of this node would have left it. */
  async death(bdSeq: number): Promise<void> {
    await this.publish(`spBv1.0/${this.group}/NDEATH/${this.edgeNode}`, {
      timestamp: Date.now(),
      metrics: [{ name: "bdSeq", type: "UInt64", value: bdSeq }] as UMetric[],
    });
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) % 256;
    return this.seq;
  }

  async publish(topic: string, payload: UPayload): Promise<void> {
    await this.publishRaw(topic, Buffer.from(sparkplug.encodePayload(payload)));
  }

  async publishRaw(topic: string, payload: Buffer): Promise<void> {
    if (!this.client) throw new Error("the test edge node is not connected");
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  /** Drops the TCP connection without DISCONNECT, so the broker publishes the Will (NDEATH). */
  kill(): void {
    const client = this.client;
    this.client = undefined;
    client?.stream.destroy();
    client?.end(true);
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.endAsync();
  }

  /** Commands received so far that set `metricName` (or any alias when the name is absent). */
  commandsSetting(name: string): ReceivedCommand[] {
    return this.commands.filter((c) => c.payload.metrics?.some((m) => m.name === name));
  }
}

/** The retained `spBv1.0/STATE/<id>` as a new subscriber gets it (parsed); `{}` when none comes within 2 s. */
// biome-ignore lint/suspicious/noExplicitAny: STATE payloads are arbitrary JSON read by assertions
export async function retainedState(id: string, url = BROKER_URL): Promise<any> {
  const client = await mqtt.connectAsync(url);
  try {
    const state = new Promise<unknown>((resolve) => {
      client.on("message", (_t, payload) => resolve(JSON.parse(payload.toString())));
      setTimeout(() => resolve({}), 2000);
    });
    await client.subscribeAsync(`spBv1.0/STATE/${id}`);
    return await state;
  } finally {
    await client.endAsync();
  }
}

/** Removes a retained message. */
export async function clearRetained(topic: string, url = BROKER_URL): Promise<void> {
  const client = await mqtt.connectAsync(url);
  await client.publishAsync(topic, "", { retain: true, qos: 1 });
  await client.endAsync();
}
