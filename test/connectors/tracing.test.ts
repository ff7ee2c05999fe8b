import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../helpers/server.js";
import { type ChildServer, startChildServer } from "../telemetry/child.js";
import { startOtlpReceiver, waitFor } from "../telemetry/receivers.js";
import { TEST_KIND } from "./test-source.js";

// One span per batch a connector writes, the parent of the write's store spans. Tracing hooks the process,
// so the server runs as a child (cli-child.ts registers the test-only source kind, see test-source.ts),
// its source ticking by itself.
const CONSUMER = 5;

describe("connector batch spans", () => {
  const dir = makeTempDir("i3xd-connector-trace-");
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let server: ChildServer;

  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    const file = path.join(dir.dir, "connectors.yaml");
    writeFileSync(
      file,
      `connectors:
  - { name: ticker, kind: ${TEST_KIND}, prefix: tick, tickMs: 50 }
  - { name: pruner, kind: ${TEST_KIND}, prefix: prune, tickMs: 50, removeAfterTicks: 3 }
`,
    );
    server = await startChildServer(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "100",
        I3XD_DEMO: "false",
        I3XD_CONNECTORS_FILE: file,
      },
      "test/connectors/cli-child.ts",
    );
  });
  afterAll(async () => {
    await server?.stop();
    await otlp?.close();
    dir.remove();
  });

  it("makes each batch a root span whose children are the write's store spans", async () => {
    const found = await waitFor("a connector batch with its store write", () => {
      const spans = otlp.spans();
      const batch = spans.find(
        (s) =>
          s.name === "connector.batch" &&
          spans.some((c) => c.parentSpanId === s.spanId && c.name === "repository.write_points"),
      );
      return batch === undefined ? undefined : { batch, spans };
    });
    const { batch, spans } = found;
    expect(batch.kind).toBe(CONSUMER);
    expect(batch.parentSpanId).toBe("");
    expect(batch.attributes["connector.name"]).toBe("ticker");
    expect(batch.attributes["connector.points"]).toBeGreaterThanOrEqual(1);
    const write = spans.find((c) => c.parentSpanId === batch.spanId && c.name === "repository.write_points");
    expect(write?.traceId).toBe(batch.traceId);
  });

  it("makes a connector's removal a root span whose child is the store's removal", async () => {
    const { batch, removal } = await waitFor("a connector removal with its store removal", () => {
      const spans = otlp.spans();
      for (const s of spans) {
        if (s.name !== "connector.batch" || s.attributes["connector.removed"] === undefined) continue;
        const child = spans.find(
          (c) => c.parentSpanId === s.spanId && c.name === "repository.remove_entities",
        );
        if (child !== undefined) return { batch: s, removal: child };
      }
      return undefined;
    });
    expect(batch.parentSpanId).toBe("");
    expect(batch.attributes["connector.name"]).toBe("pruner");
    expect(batch.attributes["connector.removed"]).toBe(1);
    expect(removal.attributes["entity.id"]).toBe("prune.e1");
    expect(removal.attributes["result.count"]).toBe(1);
  });
});
