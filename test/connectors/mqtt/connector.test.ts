import { execSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorSettings } from "../../../src/connectors/connector.js";
import { type MqttConnector, mqttConnectorKind } from "../../../src/connectors/mqtt/mqtt-connector.js";
import type { MqttOptions } from "../../../src/connectors/mqtt/options.js";
import { clearRetained, connectClient, LOCAL_BROKER, OwnBroker, uniquePrefix } from "../../helpers/mqtt.js";
import { until } from "../../security/child.js";
import { RecordingContext } from "../recording-context.js";

/**
 * The MQTT connector against a real Mosquitto, seen from the framework's side of the contract: this
 * context records what the connector hands over (points in order, model pieces, counts, state changes)
 * and lets a test hold the queue full. Those are what the contract promises and what the HTTP API cannot
 * show one by one (when reading pauses, which state call came when). The end-to-end behaviour through the
 * running server is in test/connectors/mqtt/e2e.test.ts.
 */
function settings(name: string, options: MqttOptions): ConnectorSettings {
  return {
    name,
    kind: "mqtt",
    required: false,
    onLoss: "bad",
    options: options as unknown as Record<string, unknown>,
  };
}

const running: MqttConnector[] = [];
afterAll(() => OwnBroker.killAll());
async function startConnector(name: string, options: MqttOptions) {
  const s = settings(name, options);
  const connector = mqttConnectorKind.create(s) as MqttConnector;
  const context = new RecordingContext(s);
  running.push(connector);
  await connector.start(context);
  await until(
    "the connector to connect",
    () => (connector.health().state === "up" ? true : undefined),
    10_000,
  );
  return { connector, context };
}

describe("MQTT connector on the local broker", () => {
  const prefix = uniquePrefix("connector");
  let publisher: MqttClient;

  beforeAll(async () => {
    publisher = await connectClient();
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await publisher?.endAsync();
    await clearRetained(prefix);
  });

  it("seeds from retained messages with their own timestamps, maps live ones and counts unmatched topics", async () => {
    const seededAt = "2026-01-02T03:04:05.678Z";
    await publisher.publishAsync(
      `${prefix}/riverside/pumping/pump-101/flow`,
      JSON.stringify({ value: 87.5, ts: seededAt }),
      {
        qos: 1,
        retain: true,
      },
    );
    const { context } = await startConnector("uns", {
      url: LOCAL_BROKER,
      subscriptions: [`${prefix}/#`],
      rules: [{ topic: `${prefix}/{site}/{area}/{equipment}/{tag}`, value: "value", timestamp: "ts" }],
    });
    const flowId = `${prefix}/riverside/pumping/pump-101/flow`;
    await until("the retained value", () => (context.points.length >= 1 ? true : undefined));
    expect(context.points[0]).toEqual({
      elementId: flowId,
      value: 87.5,
      quality: "Good",
      tsUs: Date.parse(seededAt) * 1000,
    });
    await publisher.publishAsync(`${prefix}/riverside/pumping/pump-101/flow`, JSON.stringify({ value: 88 }), {
      qos: 1,
    });
    await publisher.publishAsync(`${prefix}/riverside/unmapped`, "1", { qos: 1 });
    await until("the live value and the unmatched one", () =>
      context.points.length >= 2 && context.countsStarting("unmatched") === 1 ? true : undefined,
    );
    expect(context.points[1]).toMatchObject({ elementId: flowId, value: 88, quality: "Good" });
    // Parents were applied before the first point, each level once.
    const created = context.models.flatMap((m) => m.objects ?? []).map((o) => o.elementId);
    expect(created).toContain(`${prefix}/riverside/pumping/pump-101`);
    expect(new Set(created).size).toBe(created.length);
  });

  it("publishes writes of writable rules to the command topic and refuses the others", async () => {
    const { connector } = await startConnector("writer", {
      url: LOCAL_BROKER,
      rules: [
        {
          topic: `${prefix}/cmd/{equipment}/setpoint`,
          writable: true,
          commandTopic: `${prefix}/cmd/{equipment}/setpoint/set`,
        },
        { topic: `${prefix}/cmd/{equipment}/{tag}` },
      ],
    });
    const listener = await connectClient();
    const got: { topic: string; payload: string; retain: boolean }[] = [];
    listener.on("message", (topic, payload, packet) =>
      got.push({ topic, payload: payload.toString(), retain: packet.retain }),
    );
    await listener.subscribeAsync(`${prefix}/cmd/#`, { qos: 1 });
    const results = await connector.write([
      { elementId: "a", value: { speed: 72.5 }, source: `${prefix}/cmd/pump-101/setpoint` },
      { elementId: "b", value: 1, source: `${prefix}/cmd/pump-101/flow` },
      { elementId: "c", value: 1, source: undefined },
    ]);
    expect(results[0]).toEqual({ ok: true });
    expect(results[1]).toMatchObject({ ok: false, status: 403 });
    expect(results[2]).toMatchObject({ ok: false, status: 403 });
    await until("the command", () => (got.length > 0 ? true : undefined));
    expect(got).toEqual([
      { topic: `${prefix}/cmd/pump-101/setpoint/set`, payload: '{"speed":72.5}', retain: false },
    ]);
    await listener.endAsync();
  });

  it("counts over-limit, binary and malformed payloads by reason and keeps reading", async () => {
    const { context } = await startConnector("strict", {
      url: LOCAL_BROKER,
      maxPayloadBytes: 1024,
      rules: [{ topic: `${prefix}/strict/{tag}` }],
    });
    await publisher.publishAsync(`${prefix}/strict/a`, Buffer.alloc(4096, "1"), { qos: 1 });
    await publisher.publishAsync(`${prefix}/strict/a`, Buffer.from([0x00, 0xff, 0xfe, 0x80]), { qos: 1 });
    await publisher.publishAsync(`${prefix}/strict/a`, "{ nope", { qos: 1 });
    await publisher.publishAsync(`${prefix}/strict/a`, "12.5", { qos: 1 });
    await until("the good value after the bad ones", () => (context.points.length === 1 ? true : undefined));
    expect(context.points[0]).toMatchObject({ elementId: `${prefix}/strict/a`, value: 12.5 });
    expect(context.countsStarting("invalid: payload too large")).toBe(1);
    expect(context.countsStarting(`invalid: ${prefix}/strict/a: payload is not UTF-8 text`)).toBe(1);
    expect(context.countsStarting(`invalid: ${prefix}/strict/a: payload is not JSON`)).toBe(1);
    expect(context.counts.get("received")).toBe(4);
  });

  it("stops reading while the queue is full and goes on in order once it drains", async () => {
    const { context } = await startConnector("paced", {
      url: LOCAL_BROKER,
      rules: [{ topic: `${prefix}/paced/{tag}` }],
    });
    context.holdQueue();
    for (let i = 0; i < 200; i++) await publisher.publishAsync(`${prefix}/paced/x`, String(i), { qos: 1 });
    await until("the first points", () => (context.points.length >= 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    // What filled the queue was taken (the messages of one turn go together); then reading stopped.
    const taken = context.points.length;
    expect(taken).toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(context.points).toHaveLength(taken);
    context.releaseQueue();
    await until("all points", () => (context.points.length === 200 ? true : undefined));
    expect(context.points.map((p) => p.value)).toEqual([...Array(200).keys()]);
  });
});

describe("MQTT connector losing its broker", () => {
  let broker: OwnBroker;
  const prefix = uniquePrefix("loss");

  beforeAll(async () => {
    broker = await OwnBroker.start();
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await broker?.kill();
  });

  it("reports down on loss, up and a reconnect after, and loses no QoS 1 message published while connected", async () => {
    const { context } = await startConnector("lossy", {
      url: broker.url,
      reconnect: { minMs: 50, maxMs: 400 },
      rules: [{ topic: `${prefix}/{tag}` }],
    });
    const publish = async (from: number, to: number) => {
      const client = await connectClient(broker.url);
      for (let i = from; i < to; i++) await client.publishAsync(`${prefix}/counter`, String(i), { qos: 1 });
      await client.endAsync();
    };
    await publish(0, 50);
    await until("the first batch", () => (context.points.length === 50 ? true : undefined));
    await broker.kill();
    await until("down", () => (context.states.at(-1)?.state === "down" ? true : undefined));
    await broker.restart();
    await until("up again", () => (context.states.at(-1)?.state === "up" ? true : undefined), 15_000);
    expect(context.reconnects).toBe(1);
    await publish(50, 100);
    await until("the second batch", () => (context.points.length === 100 ? true : undefined));
    expect(context.points.map((p) => p.value)).toEqual([...Array(100).keys()]);
    expect(context.states.map((s) => s.state)).toEqual(["up", "down", "up"]);
  });

  it("adds no second point when a retained message comes again after a reconnect", async () => {
    const persistent = await OwnBroker.start([
      "persistence true",
      `persistence_location ${mkdtempSync(path.join(tmpdir(), "i3xd-mosquitto-data-"))}/`,
      "autosave_interval 1",
    ]);
    try {
      const retainedTopic = `${prefix}/retained/level`;
      const c = await connectClient(persistent.url);
      await c.publishAsync(retainedTopic, "7.5", { qos: 1, retain: true });
      await c.endAsync();
      const { context } = await startConnector("retained", {
        url: persistent.url,
        reconnect: { minMs: 50, maxMs: 300 },
        rules: [{ topic: `${prefix}/retained/{tag}` }],
      });
      await until("the retained value", () => (context.points.length === 1 ? true : undefined));
      // SIGTERM: Mosquitto saves its retained messages on the way out.
      await persistent.kill("SIGTERM");
      await until("down", () => (context.states.at(-1)?.state === "down" ? true : undefined));
      await persistent.restart();
      await until("up again", () => (context.states.at(-1)?.state === "up" ? true : undefined), 15_000);
      // The retained message is delivered again on resubscribe; a live message after it still counts.
      const live = await connectClient(persistent.url);
      await live.publishAsync(retainedTopic, "8", { qos: 1 });
      await live.endAsync();
      await until("the live value", () => (context.points.length === 2 ? true : undefined));
      expect(context.points.map((p) => p.value)).toEqual([7.5, 8]);
      expect(context.counts.get("received")).toBe(3);
    } finally {
      await persistent.kill();
    }
  });

  it("reports a broker that cannot be reached at start as down", async () => {
    const s = settings("unreachable", {
      url: "mqtt://127.0.0.1:1",
      reconnect: { minMs: 50, maxMs: 100 },
      rules: [{ topic: "x/{t}" }],
    });
    const connector = mqttConnectorKind.create(s);
    running.push(connector as MqttConnector);
    const context = new RecordingContext(s);
    await connector.start(context);
    await until("down", () => (connector.health().state === "down" ? true : undefined));
    expect(context.states).toHaveLength(1);
    expect(context.states[0]).toMatchObject({ state: "down", detail: expect.stringMatching(/ECONNREFUSED/) });
  });
});

describe("MQTT connector over TLS with a client certificate, MQTT 3.1.1", () => {
  let broker: OwnBroker;
  let dir: string;
  const prefix = uniquePrefix("tls");

  /** A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
  function makeCertificates(): void {
    const run = (args: string) => execSync(`openssl ${args}`, { cwd: dir, stdio: "ignore" });
    run("req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem");
    for (const name of ["server", "client"]) {
      run(
        `req -newkey rsa:2048 -nodes -subj /CN=${name === "server" ? "127.0.0.1" : "i3xd"} -keyout ${name}.key -out ${name}.csr`,
      );
      writeFileSync(
        path.join(dir, `${name}.ext`),
        name === "server" ? "subjectAltName=IP:127.0.0.1\n" : "extendedKeyUsage=clientAuth\n",
      );
      run(
        `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ${name}.ext -out ${name}.pem`,
      );
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "i3xd-mqtt-tls-"));
    makeCertificates();
    broker = await OwnBroker.start([
      `cafile ${path.join(dir, "ca.pem")}`,
      `certfile ${path.join(dir, "server.pem")}`,
      `keyfile ${path.join(dir, "server.key")}`,
      "require_certificate true",
    ]);
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await broker?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects with the CA and its client certificate, and is refused without one", async () => {
    const tls = {
      caFile: path.join(dir, "ca.pem"),
      certFile: path.join(dir, "client.pem"),
      keyFile: path.join(dir, "client.key"),
    };
    const url = `mqtts://127.0.0.1:${broker.port}`;
    const { context } = await startConnector("tls", {
      url,
      tls,
      protocolVersion: 4,
      rules: [{ topic: `${prefix}/{tag}` }],
    });
    const client = await mqtt.connectAsync(url, {
      ca: readFileSync(tls.caFile),
      cert: readFileSync(tls.certFile),
      key: readFileSync(tls.keyFile),
      protocolVersion: 4,
    });
    await client.publishAsync(`${prefix}/t`, "42", { qos: 1 });
    await until("the value over TLS", () => (context.points.length === 1 ? true : undefined));
    expect(context.points[0]).toMatchObject({ elementId: `${prefix}/t`, value: 42 });
    await client.endAsync();

    const s = settings("no-cert", {
      url,
      tls: { caFile: tls.caFile },
      reconnect: { minMs: 50, maxMs: 100 },
      rules: [{ topic: "x/{t}" }],
    });
    const refused = mqttConnectorKind.create(s) as MqttConnector;
    running.push(refused);
    const refusedContext = new RecordingContext(s);
    await refused.start(refusedContext);
    await until("down", () => (refused.health().state === "down" ? true : undefined));
    expect(refusedContext.points).toHaveLength(0);
  });
});

describe("MQTT connector settings", () => {
  it("refuse a malformed rule naming it and its field", () => {
    expect(() =>
      mqttConnectorKind.create(
        settings("bad", { url: LOCAL_BROKER, rules: [{ topic: "a/{x}", elementId: "{y}" }] }),
      ),
    ).toThrow(/rules\[0\]\.elementId: unknown placeholder \{y\}/);
  });
});
