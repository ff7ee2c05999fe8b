// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../../helpers/http.js";
import { sampleValue, scrapeSamples } from "../../helpers/metrics.js";
import { clearRetained, connectClient, LOCAL_BROKER, OwnBroker, uniquePrefix } from "../../helpers/mqtt.js";
import { runPostgresTests, useTestDatabase, writePathLock } from "../../helpers/pg.js";
import { makeTempDir, startTestServer } from "../../helpers/server.js";
import { killChildren, serveChild } from "../../security/child.js";
import { eventually } from "../test-source.js";

// The MQTT connector on PostgreSQL, end to end: a flood against a write path held up by a table lock, and
// two server processes sharing one connector with the leader killed.

const enabled = await runPostgresTests();
const files = makeTempDir("i3xd-mqtt-pg-");
afterAll(async () => {
  killChildren();
  files.remove();
  await OwnBroker.killAll();
});

async function historyValues(url: string, ids: string[]): Promise<unknown[]> {
  const res = await postJson(url, "/v1/objects/history", {
    elementIds: ids,
    startTime: "2000-01-01T00:00:00Z",
    endTime: "2100-01-01T00:00:00Z",
  });
  return res.body.results.flatMap((r: any) => r.result.values.map((v: any) => v.value));
}

describe.runIf(enabled)("MQTT connector on PostgreSQL", () => {
  const db = useTestDatabase();

  it("survives a flood of 100,000 messages with the write path held up: queue and memory bounded, every message accounted for", async () => {
    // Our own broker, told to queue without limit for a slow subscriber: what the broker would otherwise
    // discard on its own is then visible to the test, and every message must reach the connector.
    const broker = await OwnBroker.start(["max_queued_messages 0", "max_inflight_messages 100"]);
    const prefix = uniquePrefix("flood");
    const maxPoints = 2000;
    const maxBytes = 256 * 1024;
    const file = files.write(
      "flood.yaml",
      `connectors:
  - name: flood
    kind: mqtt
    url: ${broker.url}
    keepaliveSeconds: 300
    queue: { maxPoints: ${maxPoints}, maxBytes: ${maxBytes} }
    rules:
      - topic: "${prefix}/{tag}"
        value: v
`,
    );
    const server = await startTestServer({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: file,
      I3XD_STORE_URL: db.url,
    });
    const lock = await writePathLock(db.url);
    const publisher = await connectClient(broker.url);
    try {
      await eventually(
        async () => (await getJson(server.url, "/health/ready")).body.result?.connectors?.[0]?.state === "up",
      );
      const ids = Array.from({ length: 100 }, (_, i) => `${prefix}/e${i}`);
      // Objects first, so that the flood is values only.
      for (const [i, id] of ids.entries())
        await publisher.publishAsync(id, JSON.stringify({ v: -1 - i }), { qos: 1 });
      await eventually(async () => {
        const s = await scrapeSamples(server.url);
        return sampleValue(s, "connector_messages_total", { connector: "flood", outcome: "stored" }) === 100;
      }, 30_000);

      await lock.hold();
      const rssBefore = process.memoryUsage().rss;
      const sent = 100_000;
      let maxQueuedPoints = 0;
      let maxQueuedBytes = 0;
      let maxRss = rssBefore;
      const sample = async () => {
        const s = await scrapeSamples(server.url);
        maxQueuedPoints = Math.max(
          maxQueuedPoints,
          sampleValue(s, "connector_queue_points", { connector: "flood" }),
        );
        maxQueuedBytes = Math.max(
          maxQueuedBytes,
          sampleValue(s, "connector_queue_bytes", { connector: "flood" }),
        );
        maxRss = Math.max(maxRss, process.memoryUsage().rss);
      };
      for (let from = 0; from < sent; from += 1000) {
        const batch: Promise<unknown>[] = [];
        for (let i = from; i < from + 1000; i++)
          batch.push(publisher.publishAsync(ids[i % ids.length], JSON.stringify({ v: i }), { qos: 1 }));
        await Promise.all(batch);
        if (from % 10_000 === 0) await sample();
      }
      await sample();
      const samples = await scrapeSamples(server.url);
      const storedWhileHeld = sampleValue(samples, "connector_messages_total", {
        connector: "flood",
        outcome: "stored",
      });
      expect(storedWhileHeld).toBe(100);
      // The queue stayed within both bounds; the connector stopped reading instead of buffering.
      expect(maxQueuedPoints).toBeGreaterThan(0);
      expect(maxQueuedPoints).toBeLessThanOrEqual(maxPoints);
      expect(maxQueuedBytes).toBeLessThanOrEqual(maxBytes);
      expect(
        sampleValue(samples, "connector_messages_total", { connector: "flood", outcome: "received" }),
      ).toBeLessThan(100 + sent / 2);
      expect(maxRss - rssBefore).toBeLessThan(150 * 1024 * 1024);

      await lock.release();
      const count = (s: Awaited<ReturnType<typeof scrapeSamples>>, outcome: string) =>
        sampleValue(s, "connector_messages_total", { connector: "flood", outcome });
      const settled = await eventually(async () => {
        const s = await scrapeSamples(server.url);
        return count(s, "stored") + count(s, "dropped") === 100 + sent ? s : undefined;
      }, 180_000);
      expect(count(settled, "received")).toBe(100 + sent);
      expect(count(settled, "invalid")).toBe(0);
      // Whatever was stored is whole in history, once; dropped messages (counted) left nothing behind.
      const stored = await historyValues(server.url, ids);
      expect(stored.length).toBe(count(settled, "stored"));
      expect(new Set(stored).size).toBe(stored.length);
    } finally {
      await lock.end();
      await publisher.endAsync();
      await server.close();
      await broker.kill();
    }
  }, 300_000);

  it("runs the connector on one of two processes; SIGKILL of the leader hands it over within seconds, with no duplicate point", async () => {
    const prefix = uniquePrefix("leader");
    const file = files.write(
      "shared.yaml",
      `connectors:
  - name: shared-uns
    kind: mqtt
    url: ${LOCAL_BROKER}
    clean: false
    sessionExpirySeconds: 120
    rules:
      - topic: "${prefix}/{tag}"
        value: v
`,
    );
    const env = (dir: string) => ({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: file,
      I3XD_STORE_URL: db.url,
      I3XD_DATA_DIR: path.join(files.dir, dir),
      LOG_LEVEL: "warn",
    });
    const state = async (url: string) =>
      (await getJson(url, "/health/ready")).body.result?.connectors?.find((c: any) => c.name === "shared-uns")
        ?.state;
    const a = await serveChild(env("a"));
    await eventually(async () => (await state(a.url)) === "up", 20_000);
    const b = await serveChild(env("b"));
    await eventually(async () => (await state(b.url)) === "standby", 20_000);

    const publisher = await connectClient();
    const element = `${prefix}/counter`;
    let published = 0;
    let publishing = true;
    const loop = (async () => {
      while (publishing) {
        await publisher.publishAsync(element, JSON.stringify({ v: published }), { qos: 1 });
        published++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await eventually(async () => published > 100, 20_000);
      const killedAt = Date.now();
      a.child.kill("SIGKILL");
      await eventually(async () => (await state(b.url)) === "up", 20_000);
      const takeoverMs = Date.now() - killedAt;
      expect(takeoverMs).toBeLessThan(10_000);
      const resumedAt = published;
      await eventually(async () => published > resumedAt + 100, 20_000);
      publishing = false;
      await loop;
      const last = published - 1;
      await eventually(async () => {
        const r = await postJson(b.url, "/v1/objects/value", { elementIds: [element] });
        return r.body.results[0]?.result?.value === last;
      }, 20_000);
      const values = (await historyValues(b.url, [element])) as number[];
      // No value twice: a message is stored by one replica only, even one taken over mid-flight.
      expect(new Set(values).size).toBe(values.length);
      // The broker kept the session for the shared client id, so what was published during the takeover
      // arrived too. A message the dead leader had taken from the broker but not yet stored is the one
      // thing a SIGKILL can lose: the connector acknowledges a message once it is queued for the store.
      const missing = [...Array(published).keys()].filter((v) => !values.includes(v));
      expect(missing.length).toBeLessThanOrEqual(2);
      expect(values.filter((v) => v >= resumedAt)).toHaveLength(published - resumedAt);
    } finally {
      publishing = false;
      await loop;
      await publisher.endAsync();
      b.child.kill("SIGTERM");
      await b.exited;
      await clearRetained(prefix);
    }
  }, 120_000);
});
