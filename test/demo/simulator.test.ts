// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_VALUE_IDS, seededRandom } from "../../src/demo/plant-physics.js";
import { Simulator } from "../../src/demo/simulator.js";
import type { ValueChange } from "../../src/domain/changes.js";
import { dataPointsWritten } from "../../src/observability/metrics.js";
import { postJson } from "../helpers/http.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

async function totalPointsWritten(): Promise<number> {
  return (await dataPointsWritten.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function currentValues(base: string, ids: readonly string[]): Promise<Map<string, any>> {
  const res = await postJson(base, "/v1/objects/value", { elementIds: ids });
  expect(res.status).toBe(200);
  return new Map(res.body.results.map((r: any) => [r.elementId, r.result]));
}

async function historyCount(base: string, id: string): Promise<number> {
  const res = await postJson(base, "/v1/objects/history", {
    elementIds: [id],
    startTime: new Date(Date.now() - 25 * 3_600_000).toISOString(),
    endTime: new Date(Date.now() + 3_600_000).toISOString(),
  });
  return res.body.results[0].result.values.length;
}

describe("Simulator driven by hand", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("writes every demo object through the write path, continuing from the stored state", async () => {
    const before = await currentValues(server.url, DEMO_VALUE_IDS);
    const historyBefore = await historyCount(server.url, "pump-101-flow");
    const pointsBefore = await totalPointsWritten();
    const changes: ValueChange[] = [];
    const stop = server.services.changes.subscribe((batch) => changes.push(...batch));
    const sim = new Simulator(server.services.writes, 3_600_000, seededRandom(7));
    try {
      await sim.tick();
      await sim.tick();
    } finally {
      stop();
    }

    // Each tick is one batch of one point per demo object; every point passed validation.
    expect(changes.map((c) => c.elementId)).toEqual([...DEMO_VALUE_IDS, ...DEMO_VALUE_IDS]);
    expect((await totalPointsWritten()) - pointsBefore).toBe(2 * DEMO_VALUE_IDS.length);
    expect(await historyCount(server.url, "pump-101-flow")).toBe(historyBefore + 2);

    const after = await currentValues(server.url, DEMO_VALUE_IDS);
    const announced = new Map(changes.map((c) => [c.elementId, c.vqt]));
    for (const id of DEMO_VALUE_IDS) {
      const { isComposition: _c, ...vqt } = after.get(id);
      expect(vqt).toEqual(announced.get(id));
      expect(vqt.quality).toBe("Good");
      expect(Date.parse(vqt.timestamp)).toBeGreaterThan(Date.parse(before.get(id).timestamp));
    }
    // It carries on from the seeded state rather than starting over: the tank barely moves in a moment.
    const levelBefore = before.get("tank-201").value.level;
    const levelAfter = after.get("tank-201").value.level;
    expect(Math.abs(levelAfter - levelBefore)).toBeLessThan(1);
    expect(after.get("pump-101").value.runHours).toBeGreaterThanOrEqual(
      before.get("pump-101").value.runHours,
    );
    expect(after.get("pump-101").value.startCount).toBe(before.get("pump-101").value.startCount);
    await sim.stop();
  });

  it("keeps running when the store rejects or fails, and never throws out of a tick", async () => {
    const failing = {
      currentValues: async () => new Map(),
      writeCurrent: async () => {
        throw new Error("store is down");
      },
    } as unknown as ConstructorParameters<typeof Simulator>[0];
    const sim = new Simulator(failing, 3_600_000);
    await expect(sim.tick()).resolves.toBeUndefined();
    await expect(sim.tick()).resolves.toBeUndefined();
  });
});

describe("Simulator on its timer", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ I3XD_SIMULATOR_INTERVAL_MS: "50" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("changes values and grows history about once per interval until stopped", async () => {
    const first = await currentValues(server.url, ["sensor-002", "tank-201"]);
    const historyBefore = await historyCount(server.url, "sensor-002");
    const deadline = Date.now() + 10_000;
    let latest = first;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      latest = await currentValues(server.url, ["sensor-002", "tank-201"]);
      if (Date.parse(latest.get("sensor-002").timestamp) > Date.parse(first.get("sensor-002").timestamp)) {
        if ((await historyCount(server.url, "sensor-002")) >= historyBefore + 3) break;
      }
    }
    expect(Date.parse(latest.get("tank-201").timestamp)).toBeGreaterThan(
      Date.parse(first.get("tank-201").timestamp),
    );
    expect(await historyCount(server.url, "sensor-002")).toBeGreaterThanOrEqual(historyBefore + 3);

    await server.close();
    const points = await totalPointsWritten();
    await new Promise((r) => setTimeout(r, 200));
    expect(await totalPointsWritten()).toBe(points);
  });
});
