import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions, type IPublishPacket, type ISubscriptionMap, type MqttClient } from "mqtt";

export type QoS = 0 | 1 | 2;

/**
 * One MQTT broker connection as the MQTT and Sparkplug B connectors use it: MQTT.js underneath, with the
 * reconnect policy, the subscription list and message backpressure this project needs on top.
 */
export interface MqttConnectionOptions {
  /** Broker URLs (`mqtt://`, `mqtts://`, `ws://`, `wss://`); tried in turn after each loss. */
  urls: readonly string[];
  clientId: string;
  username?: string;
  password?: string;
  /** PEM files: the CA that signs the broker's certificate, and this client's certificate and key. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized?: boolean };
  /** MQTT 3.1.1 (4) or 5. */
  protocolVersion: 4 | 5;
  clean: boolean;
  /** MQTT 5 only: how long the broker keeps a session that is not clean once the client is gone. */
  sessionExpirySeconds?: number;
  keepaliveSeconds: number;
  /** Reconnect delay: doubles from `minMs` up to `maxMs`, each delay drawn with full jitter. */
  reconnect: { minMs: number; maxMs: number };
  will?: { topic: string; payload: Buffer; qos: QoS; retain: boolean };
}

export interface MqttSubscription {
  topic: string;
  qos: QoS;
}

export interface MqttMessage {
  topic: string;
  payload: Buffer;
  /** Delivered from the broker's retained store when the subscription was made. */
  retained: boolean;
  /** A QoS 1/2 redelivery of a message the broker may already have delivered. */
  dup: boolean;
  qos: QoS;
}

export interface MqttConnectionEvents {
  /**
   * One message at a time, in order. The next one is not read until the returned promise (if any)
   * settles: that is how a full write queue stops reading from the broker (TCP backpressure reaches it).
   */
  message(message: MqttMessage): void | Promise<void>;
  /** Connected (and subscribed) or lost, with why. `reconnect` is true from the second connect on. */
  state(up: boolean, detail: string, reconnect: boolean): void;
}

export class MqttConnection {
  private client: MqttClient | undefined;
  private readonly subscriptions: MqttSubscription[] = [];
  private failures = 0;
  private connects = 0;
  private up = false;
  private lastError: string | undefined;
  /** What `state` last said; undefined before it said anything. */
  private reportedUp: boolean | undefined;

  constructor(
    private readonly options: MqttConnectionOptions,
    private readonly events: MqttConnectionEvents,
  ) {}

  get connected(): boolean {
    return this.up;
  }

  /** Starts connecting; returns at once. The subscriptions are (re)made after every connect. */
  start(subscriptions: readonly MqttSubscription[]): void {
    if (this.client) return;
    this.subscriptions.push(...subscriptions);
    const o = this.options;
    const [first, ...rest] = o.urls;
    const clientOptions: IClientOptions = {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      protocolVersion: o.protocolVersion,
      clean: o.clean,
      keepalive: o.keepaliveSeconds,
      reconnectPeriod: o.reconnect.minMs,
      connectTimeout: 10_000,
      // Our own subscribe runs on every connect, with the grants checked.
      resubscribe: false,
      will: o.will,
      ...(o.protocolVersion === 5 && o.sessionExpirySeconds !== undefined
        ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds } }
        : {}),
      ...(o.tls?.caFile ? { ca: readFileSync(o.tls.caFile) } : {}),
      ...(o.tls?.certFile ? { cert: readFileSync(o.tls.certFile) } : {}),
      ...(o.tls?.keyFile ? { key: readFileSync(o.tls.keyFile) } : {}),
      ...(o.tls?.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
      ...(rest.length > 0 ? { servers: o.urls.map(serverOf) } : {}),
    };
    const client = mqtt.connect(first, clientOptions);
    this.client = client;
    client.handleMessage = (packet: IPublishPacket, done) => {
      const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
      let pending: void | Promise<void>;
      try {
        pending = this.events.message({
          topic: packet.topic,
          payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
          retained: packet.retain,
          dup: packet.dup,
          qos: packet.qos,
        });
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (pending instanceof Promise)
        pending.then(
          () => done(),
          (err: unknown) => done(toError(err)),
        );
      else done();
    };
    client.on("connect", () => void this.onConnect(client));
    // Every failed or lost connection ends in exactly one "close"; "error" and "offline" only say why.
    // Counting failures on all three made the backoff grow several steps per attempt.
    client.on("error", (err) => {
      this.lastError = err.message;
    });
    client.on("close", () => this.onLoss(this.lastError ?? "connection closed"));
  }

  /** Publishes and resolves once the broker acknowledged it (QoS 1 and 2). */
  publish(topic: string, payload: Buffer | string, qos: QoS, retain: boolean): Promise<void> {
    const client = this.client;
    if (!client || !this.up) return Promise.reject(new Error("not connected to the broker"));
    return client.publishAsync(topic, payload, { qos, retain }).then(() => undefined);
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.up = false;
    if (client) await client.endAsync(true);
  }

  private async onConnect(client: MqttClient): Promise<void> {
    this.failures = 0;
    this.lastError = undefined;
    client.options.reconnectPeriod = this.options.reconnect.minMs;
    try {
      if (this.subscriptions.length > 0) {
        const granted = await client.subscribeAsync(
          Object.fromEntries(this.subscriptions.map((s) => [s.topic, { qos: s.qos }])) as ISubscriptionMap,
        );
        const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length > 0) throw new Error(`broker refused subscriptions: ${refused.join(", ")}`);
      }
    } catch (err) {
      this.lastError = toError(err).message;
      client.end(true, undefined, () => client.reconnect());
      return;
    }
    this.connects++;
    this.up = true;
    this.reportedUp = true;
    this.events.state(true, "connected", this.connects > 1);
  }

  private onLoss(detail: string): void {
    const client = this.client;
    if (!client) return;
    // MQTT.js reads `reconnectPeriod` again before each attempt: full jitter over an exponential ceiling.
    this.failures++;
    client.options.reconnectPeriod = reconnectDelayMs(this.failures, this.options.reconnect);
    // Reported once per loss, and once when the first connect fails: a source that was never reachable
    // is down too, not starting forever.
    if (this.reportedUp === false) return;
    this.reportedUp = false;
    this.up = false;
    this.events.state(false, detail, false);
  }
}

/**
 * The wait before reconnect attempt `failures` (1 = after the first loss): drawn uniformly below a ceiling
 * that doubles from `minMs` up to `maxMs` (full jitter, so that many clients losing one broker do not
 * return in step), and never below `minMs`.
 */
export function reconnectDelayMs(
  failures: number,
  limits: { minMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(limits.maxMs, limits.minMs * 2 ** Math.min(failures, 20));
  return Math.max(limits.minMs, Math.round(random() * ceiling));
}

function serverOf(url: string): { host: string; port: number; protocol: "mqtt" | "mqtts" | "ws" | "wss" } {
  const u = new URL(url);
  const protocol = u.protocol.replace(":", "") as "mqtt" | "mqtts" | "ws" | "wss";
  const defaultPort = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 }[protocol] ?? 1883;
  return { host: u.hostname, port: u.port ? Number(u.port) : defaultPort, protocol };
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
