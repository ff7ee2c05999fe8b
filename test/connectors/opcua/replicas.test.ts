// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { DataType, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../../helpers/http.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { createTestDatabase, runPostgresTests, type TestDatabase } from "../../helpers/pg.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";

/**
 * Two replicas on one PostgreSQL database with the same OPC UA connector: only the leader opens a
 * session with the server; both answer with its values; when the leader stops, the other takes over.
 */

const enabled = await runPostgresTests();
const files = makeTempDir("i3xd-opcua-pg-");
afterAll(() => files.remove());

const speed = `line:nsu=${PLANT_NAMESPACE};s=P101.Speed`;

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
    const file = path.join(files.dir, "line.yaml");
    writeFileSync(
      file,
      `connectors:\n  - { name: line, kind: opcua, endpointUrl: "${plant.endpointUrl}", subscription: { publishingIntervalMs: 50 } }\n`,
    );
    for (let i = 0; i < 2; i++) {
      servers.push(
        await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file, I3XD_STORE_URL: db.url }),
      );
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await plant?.stop();
    await db?.drop();
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
