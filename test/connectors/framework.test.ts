// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectorKinds } from "../../src/connectors/kinds.js";
import { getJson, postJson } from "../helpers/http.js";
import { sampleValue, scrapeSamples } from "../helpers/metrics.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { openSse } from "../helpers/sse.js";
import { eventually, runningSource, TEST_KIND, testSourceKind } from "./test-source.js";

// The connector framework through the server's public interface, fed by a test-only source kind that this
// file registers (see test-source.ts): the real kinds are tested against real brokers in their own tests.
connectorKinds.register(testSourceKind);
afterAll(() => connectorKinds.unregister(TEST_KIND));

const T0 = Date.UTC(2030, 0, 1);
const us = (ms: number) => ms * 1000;

const files = makeTempDir("i3xd-connectors-");
afterAll(() => files.remove());

async function readValues(server: TestServer, ids: string[]): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: ids });
  expect(res.status).toBe(200);
  return res.body.results.map((r: any) => (r.success ? r.result : r.responseDetail));
}

const putValue = (server: TestServer, updates: unknown[]) =>
  postJson(server.url, "/v1/objects/value", { updates }, { method: "PUT" });
const putHistory = (server: TestServer, updates: unknown[]) =>
  postJson(server.url, "/v1/objects/history", { updates }, { method: "PUT" });
const itemStatus = (body: any) => body.results.map((r: any) => (r.success ? 200 : r.responseDetail.status));

describe("a server with connectors", () => {
  let server: TestServer;

  beforeAll(async () => {
    process.env.I3XD_TEST_SOURCE_SECRET = "s3cret-from-env";
    const file = files.write(
      "connectors.yaml",
      `connectors:
  - name: plant
    kind: ${TEST_KIND}
    prefix: plant
    password: \${I3XD_TEST_SOURCE_SECRET}
  - name: held
    kind: ${TEST_KIND}
    onLoss: uncertain
    prefix: held
  - name: writer
    kind: ${TEST_KIND}
    prefix: writer
    canWrite: true
    refuse: [writer.e2]
  - name: critical
    kind: ${TEST_KIND}
    required: true
    prefix: critical
    elements: 1
`,
    );
    server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
    await eventually(() =>
      ["plant", "held", "writer", "critical"].every((n) => runningSource(n, server.dataDir)),
    );
  });
  afterAll(async () => {
    await server?.close();
    delete process.env.I3XD_TEST_SOURCE_SECRET;
  });

  const source = (name: string) => {
    const s = runningSource(name, server.dataDir);
    if (s === undefined) throw new Error(`${name} is not running`);
    return s;
  };

  it("gives the connector its settings, secrets taken from the environment", () => {
    expect(source("plant").settings).toEqual({
      name: "plant",
      kind: TEST_KIND,
      required: false,
      onLoss: "bad",
      options: { prefix: "plant", password: "s3cret-from-env" },
    });
    expect(source("held").settings.onLoss).toBe("uncertain");
  });

  it("stamps every object a connector creates with the connector, keeping the source it gave", async () => {
    const res = await postJson(server.url, "/v1/objects/list", {
      elementIds: ["plant", "plant.e0"],
      includeMetadata: true,
    });
    expect(res.status).toBe(200);
    const [folder, reading] = res.body.results.map((r: any) => r.result);
    expect(folder.metadata.system).toEqual({ connector: "plant" });
    expect(reading.metadata.system).toEqual({ connector: "plant", source: "plant/plant.e0" });
    expect(reading.parentId).toBe("plant");
  });

  it("never lets a connector take over objects it did not create", async () => {
    const held = source("held");
    const change = {
      objects: [{ elementId: "plant.e0", displayName: "mine now", typeElementId: "held-reading-type" }],
    };
    await expect(held.context?.applyModel(change)).rejects.toThrow(
      'objects (plant.e0): already exists and belongs to connector "plant"',
    );
    const res = await postJson(server.url, "/v1/objects/list", { elementIds: ["plant.e0"] });
    expect(res.body.results[0].result.displayName).toBe("plant.e0");
  });

  it("applies a model it already stored without writing it again", async () => {
    const plant = source("plant");
    const context = plant.context as NonNullable<typeof plant.context>;
    const ids = { elementIds: ["plant", "plant.e0", "plant.e1"] };
    const misses = async () =>
      (await scrapeSamples(server.url))
        .filter((s) => s.name === "cache_misses_total")
        .reduce((n, s) => n + s.value, 0);
    // Warm the caches, including what applying the model reads.
    await plant.start(context);
    await postJson(server.url, "/v1/objects/list", ids);
    const before = await misses();
    await plant.start(context);
    const res = await postJson(server.url, "/v1/objects/list", ids);
    expect(res.body.results.every((r: any) => r.success)).toBe(true);
    // Had the model been imported again, the cache in front of the store would have been dropped.
    expect(await misses()).toBe(before);
  });

  it("stores submitted points as current values and history, and streams them to subscribers", async () => {
    const client = await postJson(server.url, "/v1/subscriptions", { clientId: "c-plant" });
    const subscriptionId = client.body.result.subscriptionId;
    await postJson(server.url, "/v1/subscriptions/register", {
      clientId: "c-plant",
      subscriptionId,
      elementIds: ["plant.e0"],
    });
    const stream = await openSse(`${server.url}/v1/subscriptions/stream`, {
      clientId: "c-plant",
      subscriptionId,
    });
    expect(stream.status).toBe(200);

    const plant = source("plant");
    plant.emit([{ elementId: "plant.e0", value: 1.5, quality: "Good", tsUs: us(T0) }]);
    plant.emit([
      { elementId: "plant.e0", value: 2.5, quality: "Good", tsUs: us(T0 + 1000) },
      { elementId: "plant.e1", value: 7, quality: "Uncertain", tsUs: us(T0 + 1000) },
    ]);
    await eventually(async () => (await readValues(server, ["plant.e0"]))[0].value === 2.5);
    const [e0, e1] = await readValues(server, ["plant.e0", "plant.e1"]);
    expect(e0).toMatchObject({ value: 2.5, quality: "Good", timestamp: "2030-01-01T00:00:01.000Z" });
    expect(e1).toMatchObject({ value: 7, quality: "Uncertain" });

    const history = await postJson(server.url, "/v1/objects/history", {
      elementIds: ["plant.e0"],
      startTime: "2030-01-01T00:00:00Z",
      endTime: "2030-01-01T00:01:00Z",
    });
    expect(history.body.results[0].result.values.map((v: any) => v.value)).toEqual([1.5, 2.5]);

    await stream.waitFor(() => stream.events.flat().length >= 2);
    expect(stream.events.flat().map((u: any) => u.value)).toEqual([1.5, 2.5]);
    stream.close();

    const samples = await scrapeSamples(server.url);
    expect(
      sampleValue(samples, "connector_messages_total", { connector: "plant", outcome: "received" }),
    ).toBe(2);
    expect(sampleValue(samples, "connector_messages_total", { connector: "plant", outcome: "stored" })).toBe(
      2,
    );
    expect(sampleValue(samples, "connector_up", { connector: "plant" })).toBe(1);
    expect(sampleValue(samples, "connector_ingest_lag_seconds_count", { connector: "plant" })).toBe(3);
  });

  it("stores historical points without replacing a newer current value", async () => {
    const plant = source("plant");
    plant.emit([{ elementId: "plant.e2", value: 10, quality: "Good", tsUs: us(T0 + 5000) }]);
    plant.emit([{ elementId: "plant.e2", value: 9, quality: "Good", tsUs: us(T0 + 4000), historical: true }]);
    await eventually(async () => {
      const h = await postJson(server.url, "/v1/objects/history", {
        elementIds: ["plant.e2"],
        startTime: "2030-01-01T00:00:00Z",
        endTime: "2030-01-01T00:01:00Z",
      });
      return h.body.results[0].result.values.length === 2;
    });
    expect((await readValues(server, ["plant.e2"]))[0]).toMatchObject({ value: 10 });
  });

  it("counts points the write path refuses as invalid and stores the rest of the batch", async () => {
    const plant = source("plant");
    plant.emit([{ elementId: "plant.e1", value: "not a number", quality: "Good", tsUs: us(T0 + 6000) }]);
    plant.emit([{ elementId: "held.e0", value: 1, quality: "Good", tsUs: us(T0 + 6000) }]);
    plant.emit([{ elementId: "plant.e1", value: 8, quality: "Good", tsUs: us(T0 + 7000) }]);
    await eventually(async () => (await readValues(server, ["plant.e1"]))[0].value === 8);
    const samples = await scrapeSamples(server.url);
    expect(sampleValue(samples, "connector_messages_total", { connector: "plant", outcome: "invalid" })).toBe(
      2,
    );
    // Another connector's element is never written by this one.
    expect((await readValues(server, ["held.e0"]))[0].quality).toBe("GoodNoData");
  });

  it("reports each connector in readiness; only a required one that is down makes it 503", async () => {
    const ready = await getJson(server.url, "/health/ready");
    expect(ready.status).toBe(200);
    expect(ready.body.result.connectors).toEqual(
      expect.arrayContaining([
        { name: "plant", kind: TEST_KIND, state: "up", required: false, extra: { emitted: 7 } },
        { name: "critical", kind: TEST_KIND, state: "up", required: true, extra: { emitted: 0 } },
      ]),
    );

    source("writer").down("broker unreachable");
    await eventually(async () => (await getJson(server.url, "/health/ready")).body.result?.connectors);
    const stillReady = await getJson(server.url, "/health/ready");
    expect(stillReady.status).toBe(200);
    expect(stillReady.body.result.connectors).toContainEqual({
      name: "writer",
      kind: TEST_KIND,
      state: "down",
      required: false,
      detail: "broker unreachable",
      extra: { emitted: 0 },
    });
    source("writer").up();

    source("critical").down("broker unreachable");
    const notReady = await getJson(server.url, "/health/ready");
    expect(notReady.status).toBe(503);
    expect(notReady.body.detail ?? JSON.stringify(notReady.body)).toContain("critical (broker unreachable)");
    source("critical").up();
    expect((await getJson(server.url, "/health/ready")).status).toBe(200);
  });

  it("on loss marks every element Bad with no value at the loss time; the next point brings it back", async () => {
    const plant = source("plant");
    plant.emit([{ elementId: "plant.e0", value: 3, quality: "Good", tsUs: us(T0 + 10_000) }]);
    await eventually(async () => (await readValues(server, ["plant.e0"]))[0].value === 3);
    plant.down("connection refused", us(T0 + 20_000));
    await eventually(async () => (await readValues(server, ["plant.e0"]))[0].quality === "Bad");
    const lost = await readValues(server, ["plant.e0", "plant.e1", "plant.e2"]);
    for (const v of lost)
      expect(v).toMatchObject({ value: null, quality: "Bad", timestamp: "2030-01-01T00:00:20.000Z" });
    expect(
      (await scrapeSamples(server.url)).find(
        (s) => s.name === "connector_up" && s.labels.connector === "plant",
      )?.value,
    ).toBe(0);

    plant.up();
    plant.emit([{ elementId: "plant.e0", value: 4, quality: "Good", tsUs: us(T0 + 30_000) }]);
    await eventually(async () => (await readValues(server, ["plant.e0"]))[0].value === 4);
    expect((await readValues(server, ["plant.e1"]))[0].quality).toBe("Bad");
    const samples = await scrapeSamples(server.url);
    expect(sampleValue(samples, "connector_reconnects_total", { connector: "plant" })).toBe(1);
  });

  it("with onLoss uncertain holds each element's last value as Uncertain", async () => {
    const held = source("held");
    held.emit([
      { elementId: "held.e0", value: 11, quality: "Good", tsUs: us(T0) },
      { elementId: "held.e1", value: 12, quality: "Good", tsUs: us(T0) },
    ]);
    await eventually(async () => (await readValues(server, ["held.e1"]))[0].value === 12);
    held.down("gone", us(T0 + 60_000));
    await eventually(async () => (await readValues(server, ["held.e0"]))[0].quality === "Uncertain");
    const [e0, e1, e2] = await readValues(server, ["held.e0", "held.e1", "held.e2"]);
    expect(e0).toMatchObject({ value: 11, quality: "Uncertain", timestamp: "2030-01-01T00:01:00.000Z" });
    expect(e1).toMatchObject({ value: 12, quality: "Uncertain" });
    // Never had a value: nothing to hold.
    expect(e2.quality).toBe("GoodNoData");
    held.up();
  });

  it("routes API writes on connector elements to the source and stores only what it accepted", async () => {
    const res = await putValue(server, [
      { elementId: "writer.e0", value: { value: 42, timestamp: "2030-02-01T00:00:00Z" } },
      { elementId: "writer.e2", value: { value: 43 } },
      { elementId: "writer.e1", value: { value: "not a number" } },
    ]);
    expect(res.status).toBe(200);
    expect(itemStatus(res.body)).toEqual([200, 403, 400]);
    expect(res.body.results[1].responseDetail.detail).toBe("writer.e2 is read-only at the source");
    expect(source("writer").written).toEqual([
      { elementId: "writer.e0", value: 42, source: "plant/writer.e0" },
    ]);
    const [e0, e2, e1] = await readValues(server, ["writer.e0", "writer.e2", "writer.e1"]);
    expect(e0).toMatchObject({ value: 42, quality: "Good", timestamp: "2030-02-01T00:00:00.000Z" });
    expect(e2.quality).toBe("GoodNoData");
    expect(e1.quality).toBe("GoodNoData");
  });

  it("refuses writes to elements of a connector that cannot write, and history writes to any", async () => {
    const refused = await putValue(server, [{ elementId: "plant.e0", value: { value: 5 } }]);
    expect(itemStatus(refused.body)).toEqual([405]);
    expect(refused.body.results[0].responseDetail.detail).toContain('connector "plant"');
    const history = await putHistory(server, [
      { elementId: "writer.e0", value: { value: 5, quality: "Good", timestamp: "2030-03-01T00:00:00Z" } },
    ]);
    expect(itemStatus(history.body)).toEqual([409]);
    expect(history.body.results[0].responseDetail.detail).toContain("its source owns its data");
    expect((await readValues(server, ["plant.e0"]))[0].value).toBe(4);
    expect((await readValues(server, ["writer.e0"]))[0].value).toBe(42);
  });
});

describe("loss across restarts", () => {
  it("marks elements stored by an earlier run, not only those seen since start", async () => {
    const data = makeTempDir();
    const file = files.write(
      "restart.yaml",
      `connectors:\n  - { name: again, kind: ${TEST_KIND}, prefix: again }\n`,
    );
    const env = { I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file, I3XD_DATA_DIR: data.dir };
    try {
      let server = await startTestServer(env);
      const first = await eventually(() => runningSource("again", data.dir));
      first.emit([{ elementId: "again.e1", value: 5, quality: "Good", tsUs: us(T0) }]);
      await eventually(async () => (await readValues(server, ["again.e1"]))[0].value === 5);
      await server.close();

      server = await startTestServer(env);
      const second = await eventually(() => runningSource("again", data.dir));
      expect(second).not.toBe(first);
      second.down("lost right after start", us(T0 + 1000));
      await eventually(async () => (await readValues(server, ["again.e1"]))[0].quality === "Bad");
      second.emit([{ elementId: "again.e1", value: 6, quality: "Good", tsUs: us(T0 + 2000) }]);
      await eventually(async () => (await readValues(server, ["again.e1"]))[0].value === 6);
      await server.close();

      // A source that cannot even be started: what an earlier run stored must not look live.
      writeFileSync(
        file,
        `connectors:\n  - { name: again, kind: ${TEST_KIND}, prefix: again, failStart: "certificate expired", required: true }\n`,
      );
      server = await startTestServer(env);
      await eventually(async () => (await readValues(server, ["again.e1"]))[0].quality === "Bad");
      const ready = await getJson(server.url, "/health/ready");
      expect(ready.status).toBe(503);
      expect(ready.body.detail ?? JSON.stringify(ready.body)).toContain(
        "again (could not start: certificate expired)",
      );
      await server.close();

      // A kind that throws while the connector is being built fails the same way, without stopping the
      // server or its other connectors.
      writeFileSync(
        file,
        `connectors:\n  - { name: again, kind: ${TEST_KIND}, prefix: again, failCreate: "driver missing", required: true }\n` +
          `  - { name: other, kind: ${TEST_KIND}, prefix: other }\n`,
      );
      server = await startTestServer(env);
      await eventually(async () => {
        const r = await getJson(server.url, "/health/ready");
        return r.status === 503 && JSON.stringify(r.body).includes("again (could not start: driver missing)");
      });
      await eventually(() => runningSource("other", data.dir));
      expect((await getJson(server.url, "/health/live")).status).toBe(200);
      await server.close();
    } finally {
      data.remove();
    }
  });
});
