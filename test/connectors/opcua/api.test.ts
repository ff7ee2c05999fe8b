// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../../helpers/http.js";
import { sampleValue, scrapeSamples } from "../../helpers/metrics.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import { openSse } from "../../helpers/sse.js";

/**
 * The OPC UA connector end to end: an in-process OPC UA server on 127.0.0.1, i3xd started with a
 * connectors file naming it, and every assertion made through the i3X HTTP API (and /metrics).
 */

const NAME = "plant";
const id = (s: string) => `${NAME}:nsu=${PLANT_NAMESPACE};s=${s}`;

const files = makeTempDir("i3xd-opcua-api-");
afterAll(() => files.remove());

function connectorsFile(name: string, endpointUrl: string, extra = ""): string {
  const file = path.join(files.dir, name);
  writeFileSync(
    file,
    `connectors:
  - name: ${NAME}
    kind: opcua
    endpointUrl: ${endpointUrl}
    writable: true
    historyReadThrough: true
    subscription: { publishingIntervalMs: 50, samplingIntervalMs: 10 }
    reconnect: { initialDelayMs: 100, maxDelayMs: 500 }
${extra}`,
  );
  return file;
}

async function readValues(server: TestServer, ids: string[], maxDepth = 1): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: ids, maxDepth });
  expect(res.status).toBe(200);
  return res.body.results.map((r: any) => (r.success ? r.result : r.responseDetail));
}

const putValue = (server: TestServer, updates: unknown[]) =>
  postJson(server.url, "/v1/objects/value", { updates }, { method: "PUT" });

/** Polls `check` until it holds (a deadline, not a timing assertion). */
async function until(check: () => Promise<boolean>, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not there yet
    }
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("an OPC UA server bridged by i3xd", () => {
  let plant: PlantServer | undefined;
  let server: TestServer;
  const pki = path.join(files.dir, "server-pki");

  beforeAll(async () => {
    plant = await startPlantServer({ pkiDir: pki });
    server = await startTestServer({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: connectorsFile("plant.yaml", plant.endpointUrl),
    });
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].value === 1450.5);
  });
  afterAll(async () => {
    await server?.close();
    await plant?.stop();
  });

  const plantServer = () => {
    if (!plant) throw new Error("the plant server is not running");
    return plant;
  };

  it("browses objects, types and relationships into the i3X model", async () => {
    const list = await postJson(server.url, "/v1/objects/list", {
      elementIds: [id("P101"), id("T201.Level"), id("Plant")],
      includeMetadata: true,
    });
    const [pump, level, folder] = list.body.results.map((r: any) => r.result);
    expect(folder.parentId).toBeNull();
    expect(pump).toMatchObject({
      parentId: id("Plant"),
      typeElementId: `${NAME}:type:nsu=${PLANT_NAMESPACE};s=PumpType`,
      isComposition: true,
    });
    expect(level.metadata.system).toMatchObject({
      connector: NAME,
      source: `nsu=${PLANT_NAMESPACE};s=T201.Level`,
      opcua: { engineeringUnits: { displayName: "m" }, euRange: { low: 0, high: 5 } },
    });

    const types = await postJson(server.url, "/v1/objecttypes/query", {
      elementIds: [`${NAME}:type:nsu=${PLANT_NAMESPACE};s=PumpType`],
    });
    expect(types.body.results[0].result.schema.properties).toMatchObject({
      Speed: expect.any(Object),
      Running: { type: "boolean" },
    });

    const related = await postJson(server.url, "/v1/objects/related", { elementIds: [id("T201")] });
    const tankRelations = related.body.results[0].result.map((r: any) => [
      r.relationshipType,
      r.elementId ?? r.object?.elementId,
    ]);
    expect(JSON.stringify(tankRelations)).toContain(id("P101"));
  });

  it("reads a composition with maxDepth: the pump's variables are its components", async () => {
    const [pump] = await readValues(server, [id("P101")], 2);
    expect(pump.isComposition).toBe(true);
    expect(pump.components[id("P101.Speed")]).toMatchObject({ quality: "Good" });
    expect(pump.components[id("P101.Counter")].value).toBe("9007199254740993");
    expect(pump.components[id("P101.Samples")].value).toEqual([1.5, 2.5]);
    const [flat] = await readValues(server, [id("P101")], 1);
    expect(flat.components).toBeUndefined();
  });

  it("brings value changes to the current value, the history and SSE subscribers", async () => {
    const created = await postJson(server.url, "/v1/subscriptions", { clientId: "c-opcua" });
    const subscriptionId = created.body.result.subscriptionId;
    await postJson(server.url, "/v1/subscriptions/register", {
      clientId: "c-opcua",
      subscriptionId,
      elementIds: [id("P101.Speed")],
    });
    const stream = await openSse(`${server.url}/v1/subscriptions/stream`, {
      clientId: "c-opcua",
      subscriptionId,
    });
    expect(stream.status).toBe(200);

    const t1 = new Date(Date.UTC(2031, 0, 1, 0, 0, 1));
    const t2 = new Date(Date.UTC(2031, 0, 1, 0, 0, 2));
    plantServer().set("Speed", new Variant({ dataType: DataType.Double, value: 1500 }), StatusCodes.Good, t1);
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].value === 1500);
    plantServer().set("Speed", new Variant({ dataType: DataType.Double, value: 1510 }), StatusCodes.Good, t2);
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].value === 1510);
    expect((await readValues(server, [id("P101.Speed")]))[0]).toMatchObject({
      quality: "Good",
      timestamp: "2031-01-01T00:00:02.000Z",
    });

    const history = await postJson(server.url, "/v1/objects/history", {
      elementIds: [id("P101.Speed")],
      startTime: "2031-01-01T00:00:00Z",
      endTime: "2031-01-01T00:01:00Z",
    });
    expect(history.body.results[0].result.values.map((v: any) => v.value)).toEqual([1500, 1510]);

    await stream.waitFor(() => stream.events.flat().some((u: any) => u.value === 1510));
    expect(stream.events.flat().map((u: any) => u.value)).toEqual(expect.arrayContaining([1500, 1510]));
    stream.close();
  });

  it("maps Uncertain (value kept) and Bad (no value) statuses", async () => {
    plantServer().set(
      "Faulty",
      new Variant({ dataType: DataType.Double, value: 3.5 }),
      StatusCodes.UncertainSensorNotAccurate,
    );
    await until(async () => (await readValues(server, [id("P101.Faulty")]))[0].quality === "Uncertain");
    expect((await readValues(server, [id("P101.Faulty")]))[0].value).toBe(3.5);

    plantServer().set(
      "Faulty",
      new Variant({ dataType: DataType.Double, value: 4 }),
      StatusCodes.BadSensorFailure,
    );
    await until(async () => (await readValues(server, [id("P101.Faulty")]))[0].quality === "Bad");
    expect((await readValues(server, [id("P101.Faulty")]))[0].value).toBeNull();
    const samples = await scrapeSamples(server.url);
    expect(
      sampleValue(samples, "opcua_bad_status_total", { connector: NAME, status: "BadSensorFailure" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, "opcua_session_state", { connector: NAME })).toBe(1);
    expect(sampleValue(samples, "opcua_monitored_items", { connector: NAME })).toBe(10);
  });

  it("writes back with type conversion; a value that does not fit or a refused write answers per item", async () => {
    const res = await putValue(server, [
      { elementId: id("P101.Setpoint"), value: { value: 42 } },
      { elementId: id("P101.Setpoint"), value: { value: 1e6 } },
      { elementId: id("P101.Limit"), value: { value: 1 } },
      { elementId: id("P101.Status"), value: { value: "x" } },
    ]);
    expect(res.status).toBe(200);
    const [ok, tooBig, refused, readOnly] = res.body.results;
    expect(ok.success).toBe(true);
    expect(tooBig.responseDetail.status).toBe(400);
    expect(refused.success).toBe(false);
    expect(refused.responseDetail.detail).toContain("BadOutOfRange");
    expect(readOnly.responseDetail.status).toBe(403);
    expect(plantServer().variables.get("Setpoint").readValue().value.value).toBe(42);
    await until(async () => (await readValues(server, [id("P101.Setpoint")]))[0].value === 42);
    // Nothing was stored for the refused write.
    expect((await readValues(server, [id("P101.Limit")]))[0].value).toBe(5);
  });

  it("reads history older than its own through to the server (HistoryRead)", async () => {
    const range = { startTime: "2020-01-01T00:00:00Z", endTime: "2020-01-01T00:10:00Z" };
    const res = await postJson(server.url, "/v1/objects/history", {
      elementIds: [id("T201.Level")],
      ...range,
    });
    expect(res.status).toBe(200);
    // 1 and 1.5 exist only on the server; 2.5 (the value when i3xd connected) is i3xd's own.
    expect(res.body.results[0].result.values).toEqual([
      { value: 1, quality: "Good", timestamp: "2020-01-01T00:00:00.000Z" },
      { value: 1.5, quality: "Good", timestamp: "2020-01-01T00:01:00.000Z" },
      { value: 2.5, quality: "Good", timestamp: "2020-01-01T00:02:00.000Z" },
    ]);
    // A range i3xd covers is answered from its own history alone.
    const own = await postJson(server.url, "/v1/objects/history", {
      elementIds: [id("T201.Level")],
      startTime: "2020-01-01T00:02:00Z",
      endTime: "2020-01-01T00:10:00Z",
    });
    expect(own.body.results[0].result.values.map((v: any) => v.value)).toEqual([2.5]);
  });

  it("turns Bad while the server is stopped and Good again after a restart that renumbers namespaces", async () => {
    const before = plantServer();
    const port = before.port;
    const indexBefore = before.namespace.index;
    await before.stop();
    plant = undefined;
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].quality === "Bad");
    const ready = await getJson(server.url, "/health/ready");
    expect(ready.body.result.connectors).toContainEqual(
      expect.objectContaining({ name: NAME, state: "down" }),
    );

    plant = await startPlantServer({ port, pkiDir: pki, extraNamespaces: 2 });
    expect(plant.namespace.index).not.toBe(indexBefore);
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].quality === "Good", 30_000);
    // The same elements (ids from namespace URIs) carry the restarted server's values.
    expect((await readValues(server, [id("P101.Speed")]))[0].value).toBe(1450.5);
    plant.set("Speed", new Variant({ dataType: DataType.Double, value: 1234 }));
    await until(async () => (await readValues(server, [id("P101.Speed")]))[0].value === 1234);
    const samples = await scrapeSamples(server.url);
    expect(sampleValue(samples, "connector_reconnects_total", { connector: NAME })).toBeGreaterThanOrEqual(1);
  });
});

describe("two OPC UA servers, one connector each", () => {
  let east: PlantServer | undefined;
  let west: PlantServer | undefined;
  let server: TestServer;

  beforeAll(async () => {
    east = await startPlantServer({ pkiDir: path.join(files.dir, "east-pki") });
    west = await startPlantServer({ pkiDir: path.join(files.dir, "west-pki") });
    const file = path.join(files.dir, "two.yaml");
    writeFileSync(
      file,
      `connectors:
  - { name: east, kind: opcua, endpointUrl: "${east.endpointUrl}", subscription: { publishingIntervalMs: 50 } }
  - name: west
    kind: opcua
    onLoss: uncertain
    endpointUrl: "${west.endpointUrl}"
    subscription: { publishingIntervalMs: 50 }
    reconnect: { initialDelayMs: 100, maxDelayMs: 500 }
`,
    );
    server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
  });
  afterAll(async () => {
    await server?.close();
    await east?.stop();
    await west?.stop();
  });

  it("keeps the same node of two servers apart, and holds values Uncertain on loss when configured", async () => {
    const speed = (c: string) => `${c}:nsu=${PLANT_NAMESPACE};s=P101.Speed`;
    east?.set("Speed", new Variant({ dataType: DataType.Double, value: 1 }));
    west?.set("Speed", new Variant({ dataType: DataType.Double, value: 2 }));
    await until(async () => {
      const [e, w] = await readValues(server, [speed("east"), speed("west")]);
      return e.value === 1 && w.value === 2;
    });
    await west?.stop();
    west = undefined;
    await until(async () => (await readValues(server, [speed("west")]))[0].quality === "Uncertain");
    const [e, w] = await readValues(server, [speed("east"), speed("west")]);
    expect(w.value).toBe(2);
    expect(e).toMatchObject({ value: 1, quality: "Good" });
    // Without historyReadThrough, history is i3xd's own only.
    const history = await postJson(server.url, "/v1/objects/history", {
      elementIds: [`east:nsu=${PLANT_NAMESPACE};s=T201.Level`],
      startTime: "2020-01-01T00:00:00Z",
      endTime: "2020-01-01T00:10:00Z",
    });
    expect(history.body.results[0].result.values.map((v: any) => v.value)).toEqual([2.5]);
  });
});

describe("an invalid OPC UA connector entry", () => {
  it("stops start-up with a message naming the connector and the field", async () => {
    const file = path.join(files.dir, "invalid.yaml");
    writeFileSync(
      file,
      `connectors:
  - { name: broken, kind: opcua, endpointUrl: "http://not-opc", startNodes: ["Objects"], securityMode: Secure }
`,
    );
    const started = startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
    await expect(started).rejects.toThrow(/connector "broken".*endpointUrl/s);
    await expect(started).rejects.toThrow(/startNodes/);
    await expect(started).rejects.toThrow(/securityMode/);
  });
});
