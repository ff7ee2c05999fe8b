// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { describe, expect, it } from "vitest";
import { DEMO_IDS, DEMO_VALUE_IDS } from "../../src/demo/plant-physics.js";
import { formatTimestampUs } from "../../src/domain/time.js";
import { postJson } from "../helpers/http.js";
import { parseMetrics, type Sample, sampleValue, scrape } from "../helpers/metrics.js";
import { startTestServer } from "../helpers/server.js";

const HOUR_MS = 3_600_000;

describe("I3XD_HISTORY_RETENTION on the running server", () => {
  it("removes the demo plant's seeded history older than 1 h within a cycle, keeping current values", async () => {
    const server = await startTestServer({ I3XD_HISTORY_RETENTION: "1h", I3XD_STORE_UPKEEP_INTERVAL: "1s" });
    try {
      const day = {
        elementIds: [DEMO_IDS.flow],
        startTime: formatTimestampUs((Date.now() - 25 * HOUR_MS) * 1000),
        endTime: formatTimestampUs(Date.now() * 1000),
      };
      // The demo plant is seeded after the store opened: the next cycle, a second later, finds its history.
      let values: any[] = [];
      for (let i = 0; i < 100; i++) {
        values = (await postJson(server.url, "/v1/objects/history", day)).body.results[0].result.values;
        if (values.length > 0 && Date.parse(values[0].timestamp) >= Date.now() - HOUR_MS - 60_000) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const cutoff = Date.now() - HOUR_MS - 60_000;
      expect(values.length).toBeGreaterThan(100);
      expect(values.length).toBeLessThan(200); // a point every 30 s: ~120 in the hour kept, not 2,880
      for (const v of values) expect(Date.parse(v.timestamp)).toBeGreaterThanOrEqual(cutoff);

      const current = await postJson(server.url, "/v1/objects/value", { elementIds: DEMO_VALUE_IDS });
      expect(current.body.results.every((r: any) => r.success && r.result.quality === "Good")).toBe(true);

      // Every element's old history goes in the same cycle, each batch counted as it commits.
      const deleted = (m: Sample[]) =>
        sampleValue(m, "store_retention_deleted_total", { reason: "retention" });
      const store = server.store.kind;
      // The sizes are measured when the cycle ends, after its last batch is counted.
      // PostgreSQL's row estimate comes from its statistics, which a writing session reports up to about
      // ten seconds late: a cycle right after the seeding may still see none, a later one sees them.
      const measured = (m: Sample[]) =>
        sampleValue(m, "store_size_bytes", { store }) > 0 &&
        sampleValue(m, "store_history_rows_estimate") > 0;
      let metrics = parseMetrics((await scrape(server.metricsUrl ?? server.url)).text);
      for (let i = 0; i < 250 && (deleted(metrics) <= 40_000 || !measured(metrics)); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        metrics = parseMetrics((await scrape(server.metricsUrl ?? server.url)).text);
      }
      expect(deleted(metrics)).toBeGreaterThan(40_000);
      expect(sampleValue(metrics, "store_size_bytes", { store })).toBeGreaterThan(0);
      expect(sampleValue(metrics, "store_history_rows_estimate")).toBeGreaterThan(0);
      // The disk under a PostgreSQL server is not this process's to see.
      if (store === "sqlite")
        expect(sampleValue(metrics, "store_size_limit_bytes", { store })).toBeGreaterThan(0);
    } finally {
      await server.close("test");
    }
  }, 60_000);
});
