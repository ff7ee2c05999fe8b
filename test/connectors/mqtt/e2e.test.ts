// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { readFileSync } from "node:fs";
import path from "node:path";
import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConnectorsFile } from "../../../src/connectors/framework/config-file.js";
import { connectorKinds } from "../../../src/connectors/kinds.js";
import { getJson, postJson } from "../../helpers/http.js";
import { sampleValue, scrapeSamples } from "../../helpers/metrics.js";
import { clearRetained, connectClient, LOCAL_BROKER, OwnBroker, uniquePrefix } from "../../helpers/mqtt.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import { ROOT, runCli } from "../../security/child.js";
import { eventually } from "../test-source.js";

// The MQTT connector end to end: a real Mosquitto, a started i3xd with I3XD_CONNECTORS_FILE, and only the
// i3X HTTP API to look at the result.

const files = makeTempDir("i3xd-mqtt-e2e-");
afterAll(async () => {
  files.remove();
  await OwnBroker.killAll();
});

async function values(server: TestServer, ids: string[], maxDepth = 1): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: ids, maxDepth });
  return res.body.results;
}

async function currentValue(server: TestServer, id: string): Promise<any> {
  return (await values(server, [id]))[0]?.result;
}

async function history(server: TestServer, id: string): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/history", {
    elementIds: [id],
    startTime: "2000-01-01T00:00:00Z",
    endTime: "2100-01-01T00:00:00Z",
  });
  return res.body.results[0]?.result?.values ?? [];
}

async function outcome(server: TestServer, connector: string, outcome: string): Promise<number> {
  return sampleValue(await scrapeSamples(server.url), "connector_messages_total", { connector, outcome });
}

describe("MQTT connector through the i3X API (local broker)", () => {
  const prefix = uniquePrefix("e2e");
  const seededAt = "2026-03-04T05:06:07.890123Z";
  let server: TestServer;
  let client: MqttClient;

  beforeAll(async () => {
    client = await connectClient();
    // Retained before the server starts: it must seed the current value with the payload's timestamp.
    await client.publishAsync(
      `${prefix}/riverside/pumping/pump-101/flow`,
      JSON.stringify({ v: 81.5, ts: seededAt }),
      {
        qos: 1,
        retain: true,
      },
    );
    const file = files.write(
      "uns.yaml",
      `connectors:
  - name: uns
    kind: mqtt
    url: ${LOCAL_BROKER}
    maxPayloadBytes: 2048
    subscriptions: ["${prefix}/#"]
    rules:
      - topic: "${prefix}/{site}/{area}/{equipment}/setpoint"
        value: v
        writable: true
      - topic: "${prefix}/{site}/{area}/{equipment}/motor"
        value: v
        timestamp: ts
        composition: true
      - topic: "${prefix}/{site}/{area}/{equipment}/{tag}"
        value: v
        timestamp: ts
        quality: q
`,
    );
    server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
  });
  afterAll(async () => {
    await server?.close();
    await client?.endAsync();
    await clearRetained(prefix);
  });

  const id = (rest: string) => `${prefix}/riverside/pumping/${rest}`;

  it("seeds current values from retained messages, with the payload's timestamp", async () => {
    const seeded = await eventually(
      async () =>
        (await currentValue(server, id("pump-101/flow")))?.value === 81.5 &&
        currentValue(server, id("pump-101/flow")),
    );
    expect(seeded).toMatchObject({ value: 81.5, quality: "Good", timestamp: seededAt });
  });

  it("creates parents from the topic's levels and maps values, quality and timestamps", async () => {
    await client.publishAsync(
      id("pump-101/bearing-temperature"),
      JSON.stringify({ v: 61.25, ts: "2026-12-01T10:00:00Z", q: "uncertain" }),
      { qos: 1 },
    );
    const vqt = await eventually(async () => {
      const r = await currentValue(server, id("pump-101/bearing-temperature"));
      return r?.value === 61.25 ? r : undefined;
    });
    expect(vqt).toMatchObject({ quality: "Uncertain", timestamp: "2026-12-01T10:00:00.000Z" });

    const listed = await postJson(server.url, "/v1/objects/list", {
      elementIds: [prefix, `${prefix}/riverside`, id("pump-101"), id("pump-101/bearing-temperature")],
      includeMetadata: true,
    });
    const objects = listed.body.results.map((r: any) => r.result);
    expect(objects.map((o: any) => o?.parentId)).toEqual([
      prefix.slice(0, prefix.lastIndexOf("/")),
      prefix,
      `${prefix}/riverside/pumping`,
      id("pump-101"),
    ]);
    expect(objects[3].displayName).toBe("bearing-temperature");
    expect(objects[3].metadata.system).toMatchObject({
      connector: "uns",
      source: id("pump-101/bearing-temperature"),
    });
    const children = await postJson(server.url, "/v1/objects/related", {
      elementIds: [id("pump-101")],
      relationshipType: "HasChildren",
    });
    expect(children.body.results[0].result.map((r: any) => r.object.elementId)).toEqual(
      expect.arrayContaining([id("pump-101/flow"), id("pump-101/bearing-temperature")]),
    );
  });

  it("turns a composition payload into HasComponent members with their own values", async () => {
    const ts = "2026-12-01T10:00:01.5Z";
    await client.publishAsync(
      id("pump-101/motor"),
      JSON.stringify({ ts, v: { running: true, current: 17.5, "phase/L1": 230.1, bearing: { de: 55.5 } } }),
      { qos: 1 },
    );
    // The members are created before their values are stored: wait for the values, not only the members.
    const motor = await eventually(async () => {
      const [r] = await values(server, [id("pump-101/motor")], 0);
      return r?.result?.components?.[`${id("pump-101/motor")}#current`]?.quality === "Good"
        ? r.result
        : undefined;
    });
    expect(motor.isComposition).toBe(true);
    expect(motor.components[`${id("pump-101/motor")}#current`]).toMatchObject({
      value: 17.5,
      quality: "Good",
    });
    // "/" inside a member name is escaped, so the member stays one level below the motor.
    expect(motor.components[`${id("pump-101/motor")}#phase%2FL1`]).toMatchObject({ value: 230.1 });
    expect(
      motor.components[`${id("pump-101/motor")}#bearing`].components[`${id("pump-101/motor")}#bearing#de`],
    ).toMatchObject({
      value: 55.5,
      timestamp: "2026-12-01T10:00:01.500Z",
    });
  });

  it("infers a type from the first payload and widens it with later ones, never narrowing", async () => {
    const typeId = "uns:level";
    await client.publishAsync(id("tank-201/level"), JSON.stringify({ v: 3, ts: "2026-12-01T11:00:00Z" }), {
      qos: 1,
    });
    await eventually(async () => (await currentValue(server, id("tank-201/level")))?.value === 3);
    const schemaOf = async () =>
      (await postJson(server.url, "/v1/objecttypes/query", { elementIds: [typeId] })).body.results[0].result
        .schema;
    expect(await schemaOf()).toEqual({ type: "number" });
    await client.publishAsync(id("tank-201/level"), JSON.stringify({ v: 3.5, ts: "2026-12-01T11:00:01Z" }), {
      qos: 1,
    });
    await client.publishAsync(
      id("tank-201/level"),
      JSON.stringify({ v: "sensor fault", ts: "2026-12-01T11:00:02Z" }),
      {
        qos: 1,
      },
    );
    await client.publishAsync(id("tank-201/level"), JSON.stringify({ v: 4, ts: "2026-12-01T11:00:03Z" }), {
      qos: 1,
    });
    await eventually(async () => (await history(server, id("tank-201/level"))).length === 4);
    expect(await schemaOf()).toEqual({ type: ["number", "string"] });
    expect((await history(server, id("tank-201/level"))).map((p) => p.value)).toEqual([
      3,
      3.5,
      "sensor fault",
      4,
    ]);
  });

  it("publishes writes of a writable element to its command topic; others answer a per-item error", async () => {
    const commands: string[] = [];
    const listener = await connectClient();
    listener.on("message", (topic, payload) => commands.push(`${topic} ${payload.toString()}`));
    await listener.subscribeAsync(`${id("pump-101/setpoint")}/set`, { qos: 1 });
    await client.publishAsync(id("pump-101/setpoint"), JSON.stringify({ v: 70 }), { qos: 1 });
    await eventually(async () => (await currentValue(server, id("pump-101/setpoint")))?.value === 70);

    const put = await postJson(
      server.url,
      "/v1/objects/value",
      {
        updates: [
          { elementId: id("pump-101/setpoint"), value: { value: 75.5 } },
          { elementId: id("pump-101/flow"), value: { value: 1 } },
        ],
      },
      { method: "PUT" },
    );
    expect(put.body.results[0].success).toBe(true);
    expect(put.body.results[1]).toMatchObject({ success: false, responseDetail: { status: 403 } });
    expect(put.body.results[1].responseDetail.detail).toContain("writable: true");
    await eventually(() => commands.length > 0);
    expect(commands).toEqual([`${id("pump-101/setpoint")}/set 75.5`]);
    expect((await currentValue(server, id("pump-101/setpoint"))).value).toBe(75.5);
    // Nothing was stored for the refused item.
    expect((await currentValue(server, id("pump-101/flow"))).value).toBe(81.5);
    await listener.endAsync();
  });

  it("refuses malformed, over-limit and binary payloads whole, counting them; counts unmatched topics", async () => {
    const before = await outcome(server, "uns", "invalid");
    const beforeUnmatched = await outcome(server, "uns", "unmatched");
    const target = id("sensor-001/temperature");
    await client.publishAsync(target, "{ not json", { qos: 1 });
    await client.publishAsync(target, Buffer.alloc(4096, 0x31), { qos: 1 });
    await client.publishAsync(target, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), {
      qos: 1,
    });
    await client.publishAsync(target, JSON.stringify({ v: 1, ts: "not a time" }), { qos: 1 });
    await client.publishAsync(`${prefix}/too/short`, "1", { qos: 1 });
    await client.publishAsync(target, JSON.stringify({ v: 18.5 }), { qos: 1 });
    await eventually(async () => (await currentValue(server, target))?.value === 18.5);
    expect((await outcome(server, "uns", "invalid")) - before).toBe(4);
    expect((await outcome(server, "uns", "unmatched")) - beforeUnmatched).toBe(1);
    expect(await history(server, target)).toHaveLength(1);
    const ready = await getJson(server.url, "/health/ready");
    expect(ready.body.result.connectors).toEqual([
      { name: "uns", kind: "mqtt", state: "up", required: false },
    ]);
  });
});

describe("MQTT connector losing its broker (own Mosquitto)", () => {
  const prefix = uniquePrefix("loss-e2e");
  let broker: OwnBroker;
  let server: TestServer;

  beforeAll(async () => {
    broker = await OwnBroker.start();
    const file = files.write(
      "loss.yaml",
      `connectors:
  - name: lossy
    kind: mqtt
    url: ${broker.url}
    reconnect: { minMs: 50, maxMs: 500 }
    rules:
      - topic: "${prefix}/{tag}"
        value: v
        timestamp: ts
`,
    );
    server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
    await eventually(
      async () => (await getJson(server.url, "/health/ready")).body.result?.connectors?.[0]?.state === "up",
    );
  });
  afterAll(async () => {
    await server?.close();
    await broker?.kill();
  });

  it("turns Bad at the loss, Good again with the next message, and keeps every QoS 1 message once", async () => {
    const element = `${prefix}/counter`;
    const t0 = Date.UTC(2026, 11, 1, 12);
    const publish = async (from: number, to: number) => {
      const c = await connectClient(broker.url);
      for (let i = from; i < to; i++)
        await c.publishAsync(element, JSON.stringify({ v: i, ts: new Date(t0 + i * 1000).toISOString() }), {
          qos: 1,
        });
      await c.endAsync();
    };
    await publish(0, 100);
    await eventually(async () => (await currentValue(server, element))?.value === 99);

    const killedAt = Date.now();
    await broker.kill();
    const lost = await eventually(async () => {
      const r = await currentValue(server, element);
      return r?.quality === "Bad" ? r : undefined;
    });
    expect(lost.value).toBeNull();
    expect(Date.parse(lost.timestamp)).toBeGreaterThanOrEqual(killedAt - 1000);
    const ready = await getJson(server.url, "/health/ready");
    expect(ready.body.result.connectors[0].state).toBe("down");
    // Not required: a lost broker does not make the server unready.
    expect(ready.status).toBe(200);

    await broker.restart();
    await eventually(
      async () => (await getJson(server.url, "/health/ready")).body.result?.connectors?.[0]?.state === "up",
      15_000,
    );
    await publish(100, 200);
    const back = await eventually(async () => {
      const r = await currentValue(server, element);
      return r?.value === 199 ? r : undefined;
    });
    expect(back.quality).toBe("Good");
    const points = (await history(server, element)).filter((p) => p.quality === "Good");
    expect(points.map((p) => p.value)).toEqual([...Array(200).keys()]);
    const samples = await scrapeSamples(server.url);
    expect(sampleValue(samples, "connector_reconnects_total", { connector: "lossy" })).toBe(1);
    expect(sampleValue(samples, "connector_up", { connector: "lossy" })).toBe(1);
  });
});

describe("an mqtt entry of the connectors file", () => {
  it("as documented and as in examples/mqtt passes the start-up check", () => {
    const docs = readFileSync(path.join(ROOT, "docs/connectors.md"), "utf8");
    const section = docs.slice(docs.indexOf("## MQTT"));
    const documented = section.slice(
      section.indexOf("```yaml\n") + 8,
      section.indexOf("```", section.indexOf("```yaml\n") + 8),
    );
    const entries = loadConnectorsFile(
      files.write("documented.yaml", documented),
      { UNS_PASSWORD: "x" },
      connectorKinds,
    );
    expect(entries.map((e) => e.settings.options.rules)).toHaveLength(1);
    const example = loadConnectorsFile(path.join(ROOT, "examples/mqtt/connectors.yaml"), {}, connectorKinds);
    expect(example[0]?.settings).toMatchObject({ name: "riverside-uns", kind: "mqtt", onLoss: "uncertain" });
  });

  it("with a malformed rule stops start-up with exit code 2, naming the connector and the field", async () => {
    const file = files.write(
      "bad.yaml",
      `connectors:
  - name: bad
    kind: mqtt
    url: ${LOCAL_BROKER}
    rules:
      - topic: "plant/{area}/{tag}"
        elementId: "{area}/{nope}"
`,
    );
    const run = runCli(["serve"], { I3XD_CONNECTORS_FILE: file, I3XD_PORT: "0", I3XD_DATA_DIR: files.dir });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toContain(
      'connector "bad" (connectors[0]): field "rules[0].elementId" unknown placeholder {nope}',
    );
  });
});

describe("MQTT connector across a restart", () => {
  const prefix = uniquePrefix("restart");
  const data = makeTempDir("i3xd-mqtt-restart-");
  afterAll(() => data.remove());

  it("widens the stored type on a new run instead of replacing it with a narrower one, and keeps the ids", async () => {
    const file = files.write(
      "restart.yaml",
      `connectors:
  - name: again
    kind: mqtt
    url: ${LOCAL_BROKER}
    rules:
      - topic: "${prefix}/{area}/{tag}"
        value: v
`,
    );
    const env = { I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file, I3XD_DATA_DIR: data.dir };
    const client = await connectClient();
    const element = `${prefix}/north/level`;
    const schemaOf = async (server: TestServer) =>
      (await postJson(server.url, "/v1/objecttypes/query", { elementIds: ["again:level"] })).body.results[0]
        .result?.schema;
    const up = async (server: TestServer) =>
      eventually(
        async () => (await getJson(server.url, "/health/ready")).body.result?.connectors?.[0]?.state === "up",
      );
    try {
      let server = await startTestServer(env);
      await up(server);
      await client.publishAsync(element, JSON.stringify({ v: 2.5 }), { qos: 1 });
      await eventually(async () => (await currentValue(server, element))?.value === 2.5);
      expect(await schemaOf(server)).toEqual({ type: "number" });
      await server.close();

      server = await startTestServer(env);
      try {
        await up(server);
        await client.publishAsync(element, JSON.stringify({ v: "offline" }), { qos: 1 });
        await eventually(async () => (await currentValue(server, element))?.value === "offline");
        expect(await schemaOf(server)).toEqual({ type: ["number", "string"] });
        expect((await history(server, element)).map((p) => p.value)).toEqual([2.5, "offline"]);
        const objects = await getJson(server.url, "/v1/objects?includeMetadata=true");
        const mine = (objects.body.result ?? objects.body)
          .filter((o: any) => o.metadata?.system?.connector === "again")
          .map((o: any) => o.elementId);
        expect(mine.sort()).toEqual([prefix.split("/")[0], prefix, `${prefix}/north`, element].sort());
      } finally {
        await server.close();
      }
    } finally {
      await client.endAsync();
    }
  });
});
