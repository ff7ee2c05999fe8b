// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../helpers/http.js";
import { sampleValue, scrapeSamples } from "../helpers/metrics.js";
import { createTestDatabase, runPostgresTests, type TestDatabase } from "../helpers/pg.js";
import { makeTempDir } from "../helpers/server.js";
import { eventually, type Replica, startReplica, stopReplicas } from "../replicas/cluster.js";
import { TEST_KIND } from "./test-source.js";

// Two i3xd processes on one PostgreSQL database, each configured with the same connector: exactly one runs
// it, and when that process is killed (no shutdown, its database session simply ends) the other takes over
// within seconds, without the two ever writing at once. The source is the test-only kind, ticking by itself
// (cli-child.ts registers it; test-source.ts says why).

const enabled = await runPostgresTests();

async function stateOf(replica: Replica): Promise<string | undefined> {
  const ready = await getJson(replica.url, "/health/ready");
  return ready.body.result?.connectors?.find((c: any) => c.name === "ticker")?.state;
}

describe.runIf(enabled)("a connector among replicas", () => {
  const dir = makeTempDir("i3xd-connector-replicas-");
  let db: TestDatabase;
  let a: Replica;
  let b: Replica;

  beforeAll(async () => {
    db = await createTestDatabase();
    const file = path.join(dir.dir, "connectors.yaml");
    writeFileSync(
      file,
      `connectors:\n  - { name: ticker, kind: ${TEST_KIND}, prefix: tick, tickMs: 20, required: true }\n`,
    );
    const env = { I3XD_STORE_URL: db.url, I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file };
    a = await startReplica("a", env, "test/connectors/cli-child.ts");
    await eventually("a runs the connector", async () => ((await stateOf(a)) === "up" ? true : undefined));
    b = await startReplica("b", env, "test/connectors/cli-child.ts");
  }, 120_000);
  afterAll(async () => {
    await stopReplicas();
    await db?.drop();
    dir.remove();
  });

  it("runs on one replica; when it is killed the other takes over, never both at once", async () => {
    await eventually("b stands by", async () => ((await stateOf(b)) === "standby" ? true : undefined));
    expect((await getJson(b.url, "/health/ready")).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const standby = await scrapeSamples(b.url);
    expect(sampleValue(standby, "connector_messages_total", { connector: "ticker", outcome: "stored" })).toBe(
      0,
    );

    const killedAt = Date.now();
    a.child.kill("SIGKILL");
    await eventually("b runs the connector", async () => ((await stateOf(b)) === "up" ? true : undefined));
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(6000);
    await eventually("b stores points", async () => {
      const s = await scrapeSamples(b.url);
      return (
        sampleValue(s, "connector_messages_total", { connector: "ticker", outcome: "stored" }) > 10 ||
        undefined
      );
    });

    const history = await postJson(b.url, "/v1/objects/history", {
      elementIds: ["tick.e0"],
      startTime: new Date(killedAt - 60_000).toISOString(),
      endTime: new Date(Date.now() + 1000).toISOString(),
    });
    const points: { value: number; timestamp: string }[] = history.body.results[0].result.values;
    const before = points.filter((p) => Date.parse(p.timestamp) < killedAt);
    const after = points.filter((p) => Date.parse(p.timestamp) > killedAt);
    expect(before.length).toBeGreaterThan(10);
    expect(after.length).toBeGreaterThan(10);
    // Each leader counts from 0: one writer at a time gives two rising runs, two at once would interleave.
    let restarts = 0;
    for (let i = 1; i < points.length; i++) {
      expect(Date.parse(points[i].timestamp)).toBeGreaterThan(Date.parse(points[i - 1].timestamp));
      if (points[i].value < points[i - 1].value) restarts++;
    }
    expect(restarts).toBe(1);
  });
});
