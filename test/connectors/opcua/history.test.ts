// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import path from "node:path";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";

/**
 * History read through to an OPC UA server whose HistoryRead answers at most two values per variable at a
 * time (continuation points), with i3xd's per-element point limit at five: reads follow the continuation
 * points, a composition's members read through too, and 206 comes only when the limit cuts.
 */

const NAME = "hist";
const id = (s: string) => `${NAME}:nsu=${PLANT_NAMESPACE};s=${s}`;
const minute = (m: number) => `2020-01-01T00:0${m}:00.000Z`;

const files = makeTempDir("i3xd-opcua-history-");
afterAll(() => files.remove());

async function history(server: TestServer, body: Record<string, unknown>) {
  return postJson(server.url, "/v1/objects/history", body);
}

describe("OPC UA history read-through with continuation points", () => {
  let plant: PlantServer;
  let server: TestServer;

  beforeAll(async () => {
    plant = await startPlantServer({ pkiDir: path.join(files.dir, "server-pki"), historyValuesPerRead: 2 });
    // Level's history on the server: 1, 1.5, 2.5 at minutes 0-2 (the plant's own), then 3…9 at minutes 3-9.
    for (let m = 3; m <= 9; m++) {
      plant.set(
        "Level",
        new Variant({ dataType: DataType.Double, value: m }),
        StatusCodes.Good,
        new Date(minute(m)),
      );
    }
    const file = files.write(
      "hist.yaml",
      `connectors:\n  - { name: ${NAME}, kind: opcua, endpointUrl: "${plant.endpointUrl}", historyReadThrough: true, subscription: { publishingIntervalMs: 50 } }\n`,
    );
    server = await startTestServer({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: file,
      I3XD_MAX_HISTORY_POINTS: "5",
    });
    // i3xd's own history of Level starts with the value it found on connecting (minute 9).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await postJson(server.url, "/v1/objects/value", { elementIds: [id("T201.Level")] });
      if (res.body.results?.[0]?.result?.value === 9) break;
      if (Date.now() > deadline) throw new Error("Level never arrived");
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(async () => {
    await server?.close();
    await plant?.stop();
  });

  it("follows continuation points up to the point limit, complete when the limit does not cut", async () => {
    const res = await history(server, {
      elementIds: [id("T201.Level")],
      startTime: minute(0),
      endTime: minute(4),
    });
    // Five values in three pages of at most two: exactly the limit, and nothing more on the server.
    expect(res.status).toBe(200);
    expect(res.body.results[0].result.values).toEqual(
      [1, 1.5, 2.5, 3, 4].map((value, m) => ({ value, quality: "Good", timestamp: minute(m) })),
    );
  });

  it("answers 206 with the earliest points when the server holds more than the limit", async () => {
    const res = await history(server, {
      elementIds: [id("T201.Level")],
      startTime: minute(0),
      endTime: "2020-01-01T00:10:00Z",
    });
    expect(res.status).toBe(206);
    expect(res.body.results[0].result.values.map((v: any) => v.value)).toEqual([1, 1.5, 2.5, 3, 4]);
    expect(res.body.results[0].result.values.at(-1).timestamp).toBe(minute(4));
    // The next page, from where the last one ended, carries on through the server's history into i3xd's own.
    const next = await history(server, {
      elementIds: [id("T201.Level")],
      startTime: "2020-01-01T00:04:00.001Z",
      endTime: "2020-01-01T00:10:00Z",
    });
    expect(next.status).toBe(200);
    expect(next.body.results[0].result.values.map((v: any) => v.value)).toEqual([5, 6, 7, 8, 9]);
  });

  it("reads the members of a composition through as well (maxDepth)", async () => {
    const res = await history(server, {
      elementIds: [id("T201")],
      startTime: minute(1),
      endTime: minute(3),
      maxDepth: 2,
    });
    expect(res.status).toBe(200);
    const tank = res.body.results[0].result;
    expect(tank.isComposition).toBe(true);
    expect(tank.components[id("T201.Level")].values).toEqual(
      [1.5, 2.5, 3].map((value, i) => ({ value, quality: "Good", timestamp: minute(i + 1) })),
    );
    // Without maxDepth the tank alone is answered: no components, nothing read for them.
    const flat = await history(server, {
      elementIds: [id("T201")],
      startTime: minute(1),
      endTime: minute(3),
    });
    expect(flat.body.results[0].result.components).toBeUndefined();
  });
});
