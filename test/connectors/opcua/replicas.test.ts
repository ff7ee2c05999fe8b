// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import path from "node:path";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../../helpers/http.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { createTestDatabase, runPostgresTests, type TestDatabase } from "../../helpers/pg.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";

/**
 * Two replicas on one PostgreSQL database with the same OPC UA connector: only the leader opens a
 * session with the server; both answer with its values, and both read history through to it; when the
 * leader stops, the other takes over.
 */

const enabled = await runPostgresTests();
const files = makeTempDir("i3xd-opcua-pg-");
afterAll(() => files.remove());

const speed = `line:nsu=${PLANT_NAMESPACE};s=P101.Speed`;
const level = `line:nsu=${PLANT_NAMESPACE};s=T201.Level`;
/** Level's history on the server: one value a second from this time on. */
const HISTORY_START = Date.UTC(2021, 0, 1);
const HISTORY_VALUES = 600;
const second = (i: number) => new Date(HISTORY_START + i * 1000).toISOString();

async function state(server: TestServer): Promise<string | undefined> {
  const ready = await getJson(server.url, "/health/ready");
  return ready.body.result?.connectors?.find((c: any) => c.name === "line")?.state;
}

async function value(server: TestServer): Promise<unknown> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: [speed] });
  return res.body.results[0].result?.value;
}

async function until(check: () => Promise<boolean>, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.runIf(enabled)("one OPC UA connector on two PostgreSQL replicas", () => {
  let db: TestDatabase;
  let plant: PlantServer;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    plant = await startPlantServer({ pkiDir: path.join(files.dir, "server-pki") });
    for (let i = 0; i < HISTORY_VALUES; i++) {
      plant.set(
        "Level",
        new Variant({ dataType: DataType.Double, value: i }),
        StatusCodes.Good,
        new Date(second(i)),
      );
    }
    const file = files.write(
      "line.yaml",
      `connectors:\n  - { name: line, kind: opcua, endpointUrl: "${plant.endpointUrl}", historyReadThrough: true, subscription: { publishingIntervalMs: 50 } }\n`,
    );
    for (let i = 0; i < 2; i++) {
      servers.push(
        await startTestServer({
          I3XD_DEMO: "false",
          I3XD_CONNECTORS_FILE: file,
          I3XD_STORE_URL: db.url,
          // Smallest allowed: a read-through answer spans several notifications, and the limit can cut.
          I3XD_HISTORY_READ_THROUGH_MAX_BYTES: "16k",
        }),
      );
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await plant?.stop();
    await db?.drop();
  });

  it("reads history through on the replica that does not run the connector", async () => {
    await until(async () => (await Promise.all(servers.map(state))).sort().join() === "standby,up");
    const states = await Promise.all(servers.map(state));
    const standby = servers[states.indexOf("standby")] as TestServer;
    // i3xd's own history of Level starts with the value found on connecting (the last one).
    await until(async () => {
      const res = await postJson(standby.url, "/v1/objects/value", { elementIds: [level] });
      return res.body.results[0].result?.value === HISTORY_VALUES - 1;
    });
    const read = (startTime: string, endTime: string) =>
      postJson(standby.url, "/v1/objects/history", { elementIds: [level], startTime, endTime });

    // 150 values: more than one notification carries, within the byte limit.
    const some = await read(second(0), second(149));
    expect(some.status).toBe(200);
    expect(some.body.results[0].result.values).toEqual(
      Array.from({ length: 150 }, (_, i) => ({ value: i, quality: "Good", timestamp: second(i) })),
    );

    // 600 values (the last one i3xd's own) are more than 16 KiB: the earliest that fit, none after a gap,
    // and 206.
    const all = await read(second(0), second(HISTORY_VALUES - 1));
    expect(all.status).toBe(206);
    const values = all.body.results[0].result.values.map((v: any) => v.value);
    expect(values.length).toBeGreaterThan(150);
    expect(values.length).toBeLessThan(HISTORY_VALUES - 1);
    expect(values).toEqual(Array.from({ length: values.length }, (_, i) => i));
    expect(JSON.stringify(all.body.results[0].result.values).length).toBeLessThanOrEqual(16 * 1024);
    // Still one session on the OPC UA server: the standby asked the replica running the connector.
    expect(plant.server.currentSessionCount).toBe(1);
  });

  it("runs the connector on one replica; the other takes over when it stops", async () => {
    await until(async () => (await Promise.all(servers.map(state))).sort().join() === "standby,up");
    const states = await Promise.all(servers.map(state));
    const leader = servers[states.indexOf("up")] as TestServer;
    const standby = servers[states.indexOf("standby")] as TestServer;
    // One session on the OPC UA server: the standby does not connect.
    expect(plant.server.currentSessionCount).toBe(1);

    plant.set("Speed", new Variant({ dataType: DataType.Double, value: 11 }));
    await until(async () => (await value(standby)) === 11);

    await leader.close();
    servers.splice(servers.indexOf(leader), 1);
    await until(async () => (await state(standby)) === "up");
    plant.set("Speed", new Variant({ dataType: DataType.Double, value: 12 }));
    await until(async () => (await value(standby)) === 12);
    expect(plant.server.currentSessionCount).toBe(1);
  });
});
