// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { afterAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { makeTempDir, startTestServer } from "../helpers/server.js";

const data = makeTempDir();
afterAll(() => data.remove());

async function snapshot(url: string) {
  return {
    namespaces: (await getJson(url, "/v1/namespaces")).body,
    types: (await getJson(url, "/v1/objecttypes")).body,
    relationshipTypes: (await getJson(url, "/v1/relationshiptypes")).body,
    objects: (await getJson(url, "/v1/objects?includeMetadata=true")).body,
    related: (await postJson(url, "/v1/objects/related", { elementIds: ["pump-101", "tank-201"] })).body,
    values: (
      await postJson(url, "/v1/objects/value", { elementIds: ["pump-101", "sensor-001"], maxDepth: 0 })
    ).body,
    history: (
      await postJson(url, "/v1/objects/history", {
        elementIds: ["sensor-001", "pump-101"],
        startTime: "2000-01-01T00:00:00Z",
        endTime: "2100-01-01T00:00:00Z",
        maxDepth: 0,
      })
    ).body,
  };
}

describe("restart", () => {
  it("keeps the model, current values and history on disk", async () => {
    // First start: empty store, so the demo plant is imported and its simulator runs (and is stopped by close).
    const first = await startTestServer({ I3XD_DATA_DIR: data.dir });
    const seeded = await snapshot(first.url);
    await first.close("restart test");
    expect(seeded.objects.result.length).toBeGreaterThan(10);
    expect(seeded.history.results[0].result.values.length).toBeGreaterThan(1000);

    // Later starts: the demo plant is there, so nothing is imported; the simulator resumes, but its first
    // tick is an interval (an hour here) away, so nothing writes while the snapshots are taken.
    let before: any;
    const second = await startTestServer({ I3XD_DATA_DIR: data.dir, I3XD_DEMO: "" });
    try {
      before = await snapshot(second.url);
    } finally {
      await second.close("restart test");
    }
    expect(before.objects).toEqual(seeded.objects);
    expect(before.types).toEqual(seeded.types);

    const third = await startTestServer({ I3XD_DATA_DIR: data.dir, I3XD_DEMO: "" });
    try {
      expect(await snapshot(third.url)).toEqual(before);
    } finally {
      await third.close("restart test");
    }
  });
});
