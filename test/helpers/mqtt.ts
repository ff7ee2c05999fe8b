import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { freePort, until } from "../security/child.js";

/** The broker this machine (and CI) runs; tests that stop a broker start their own instead. */
export const LOCAL_BROKER = process.env.I3XD_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";

/** A topic prefix no other run shares: the local broker keeps retained messages across runs. */
export function uniquePrefix(name: string): string {
  return `i3xd-test/${name}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
}

export async function connectClient(url = LOCAL_BROKER, clientId?: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId, reconnectPeriod: 200, connectTimeout: 5000 });
}

/**
 * Clears every retained message under `prefix` (as far as the broker reports them): subscribes to
 * `prefix/#`, collects the retained topics, and publishes an empty retained payload to each.
 */
export async function clearRetained(prefix: string, url = LOCAL_BROKER): Promise<void> {
  const client = await connectClient(url);
  const topics = new Set<string>();
  client.on("message", (topic, payload, packet) => {
    if (packet.retain && payload.length > 0) topics.add(topic);
  });
  await client.subscribeAsync(`${prefix}/#`, { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));
  for (const topic of topics) await client.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
  await client.endAsync();
}

/** A Mosquitto of the test's own on a free loopback port, for tests that kill and restart a broker. */
export class OwnBroker {
  /** Every broker started and not yet killed, so that a test file can stop what a failed test left. */
  private static readonly running = new Set<OwnBroker>();
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly configFile: string | undefined,
  ) {}

  /** `config`: lines of mosquitto.conf (the listener on the free port is added). */
  static async start(config: string[] = []): Promise<OwnBroker> {
    const port = await freePort();
    let configFile: string | undefined;
    if (config.length > 0) {
      configFile = path.join(mkdtempSync(path.join(tmpdir(), "i3xd-mosquitto-")), "mosquitto.conf");
      // Started as root, Mosquitto becomes user "mosquitto", who cannot read the test's private temporary
      // files (certificates); it stays who started it.
      const user = process.getuid?.() === 0 ? ["user root"] : [];
      writeFileSync(
        configFile,
        [`listener ${port} 127.0.0.1`, "allow_anonymous true", ...user, ...config, ""].join("\n"),
      );
    }
    const broker = new OwnBroker(port, configFile);
    await broker.restart();
    return broker;
  }

  /** Kills every broker still running (afterAll). */
  static async killAll(): Promise<void> {
    await Promise.all([...OwnBroker.running].map((b) => b.kill()));
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Starts the broker again on the same port (after `kill`), waiting until it accepts connections. */
  async restart(): Promise<void> {
    const args = this.configFile ? ["-c", this.configFile] : ["-p", String(this.port)];
    const child = spawn("mosquitto", args, { stdio: "ignore" });
    this.process = child;
    OwnBroker.running.add(this);
    child.on("error", () => {});
    await until(`mosquitto on port ${this.port}`, () => canConnect(this.port), 10_000);
  }

  /** SIGKILL by default: the broker vanishes without closing connections cleanly, as a crash would. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.process;
    this.process = undefined;
    OwnBroker.running.delete(this);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }
}

function canConnect(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(undefined));
  });
}
