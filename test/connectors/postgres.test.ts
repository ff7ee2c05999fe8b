// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { connectorKinds } from "../../src/connectors/kinds.js";
import { getJson, postJson } from "../helpers/http.js";
import { sampleValue, scrapeSamples } from "../helpers/metrics.js";
import { runPostgresTests, useTestDatabase, writePathLock } from "../helpers/pg.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { eventually, instances, runningSource, TEST_KIND, testSourceKind } from "./test-source.js";

// The framework on PostgreSQL: the queue between a connector and a write path held up by a table lock, and
// leadership among replicas. Fed by the test-only source kind (test-source.ts says why).
connectorKinds.register(testSourceKind);
afterAll(() => connectorKinds.unregister(TEST_KIND));

const enabled = await runPostgresTests();
const T0 = Date.UTC(2031, 0, 1);

const files = makeTempDir("i3xd-connectors-pg-");
afterAll(() => files.remove());

async function readValue(server: TestServer, id: string): Promise<any> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: [id] });
  return res.body.results[0].result;
}

async function connectorState(server: TestServer, name: string): Promise<string | undefined> {
  const ready = await getJson(server.url, "/health/ready");
  return ready.body.result?.connectors?.find((c: any) => c.name === name)?.state;
}

describe.runIf(enabled)("connectors on PostgreSQL", () => {
  const db = useTestDatabase();

  it("bounds the queue by bytes while the write path is held up, counting what it drops", async () => {
    const maxBytes = 100_000;
    const file = files.write(
      "flood.yaml",
      `connectors:
  - name: flood
    kind: ${TEST_KIND}
    prefix: flood
    elements: 10
    queue: { maxPoints: 50000, maxBytes: ${maxBytes} }
`,
    );
    const server = await startTestServer({
      I3XD_DEMO: "false",
      I3XD_CONNECTORS_FILE: file,
      I3XD_STORE_URL: db.url,
    });
    const lock = await writePathLock(db.url);
    try {
      const source = await eventually(() => runningSource("flood", server.dataDir));
      // The write path cannot store anything while this transaction holds the table.
      await lock.hold();

      const sent = 20_000;
      let paused = 0;
      for (let i = 0; i < sent; i++) {
        const ok = source.emit(
          [{ elementId: `flood.e${i % 10}`, value: i, quality: "Good", tsUs: (T0 + i) * 1000 }],
          100,
        );
        if (!ok) paused++;
      }
      const during = await scrapeSamples(server.url);
      const queued = sampleValue(during, "connector_queue_bytes", { connector: "flood" });
      const dropped = sampleValue(during, "connector_messages_total", {
        connector: "flood",
        outcome: "dropped",
      });
      expect(queued).toBeGreaterThan(0);
      expect(queued).toBeLessThanOrEqual(maxBytes);
      // Everything beyond the bound was dropped and counted; the source was told to pause.
      expect(dropped).toBeGreaterThanOrEqual(sent - maxBytes / 100);
      expect(paused).toBeGreaterThanOrEqual(dropped);
      let drained = false;
      const waiting = source.context?.drained().then(() => {
        drained = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(drained).toBe(false);

      await lock.release();
      await waiting;
      const stored = await eventually(async () => {
        const s = await scrapeSamples(server.url);
        const n = sampleValue(s, "connector_messages_total", { connector: "flood", outcome: "stored" });
        return n === sent - dropped ? n : undefined;
      });
      // Every accepted message is in history, whole; nothing else is.
      const history = await postJson(server.url, "/v1/objects/history", {
        elementIds: Array.from({ length: 10 }, (_, i) => `flood.e${i}`),
        startTime: new Date(T0).toISOString(),
        endTime: new Date(T0 + sent).toISOString(),
      });
      const points = history.body.results.reduce((n: number, r: any) => n + r.result.values.length, 0);
      expect(points).toBe(stored);
      const after = await scrapeSamples(server.url);
      expect(sampleValue(after, "connector_queue_bytes", { connector: "flood" })).toBe(0);
      expect(sampleValue(after, "connector_queue_points", { connector: "flood" })).toBe(0);
    } finally {
      await lock.end();
      await server.close();
    }
  });

  it("a removal by a connector on one replica reaches the caches of the others", async () => {
    const file = files.write(
      "removal.yaml",
      `connectors:
  - { name: remover, kind: ${TEST_KIND}, prefix: remover }
  - { name: bystander, kind: ${TEST_KIND}, prefix: bystander, elements: 1 }
`,
    );
    const env = { I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file, I3XD_STORE_URL: db.url };
    const a = await startTestServer(env);
    let b: TestServer | undefined;
    try {
      const leader = await eventually(() => runningSource("remover", a.dataDir));
      await eventually(() => runningSource("bystander", a.dataDir));
      b = await startTestServer(env);
      const other = b;
      await eventually(async () => (await connectorState(other, "remover")) === "standby");
      leader.emit([{ elementId: "remover.e1", value: 7, quality: "Good", tsUs: T0 * 1000 }]);
      await eventually(async () => (await readValue(other, "remover.e1")).value === 7);
      // Read again, so the other replica answers from its cache: only the notification can drop it.
      expect((await readValue(other, "remover.e1")).value).toBe(7);
      const ids = async (server: TestServer) =>
        (await getJson(server.url, "/v1/objects")).body.result.map((o: any) => o.elementId);
      expect(await ids(other)).toContain("remover.e1");
      const children = async (server: TestServer) =>
        (
          await postJson(server.url, "/v1/objects/related", { elementIds: ["remover"] })
        ).body.results[0].result
          .filter((r: any) => r.sourceRelationship === "HasChildren")
          .map((r: any) => r.object.elementId)
          .sort();
      expect(await children(other)).toContain("remover.e1");

      // Another connector's objects are not this one's to remove: refused whole, nothing removed.
      const context = leader.context;
      if (context === undefined) throw new Error("the source has no context");
      await expect(context.removeModel(["remover.e2", "bystander.e0"])).rejects.toThrow(
        /bystander\.e0.*belongs to connector "bystander"/,
      );
      expect(await ids(a)).toEqual(expect.arrayContaining(["remover.e2", "bystander.e0"]));

      // A removal waits for the points submitted before it: with the write of one held up by a row lock,
      // the removal of another element waits too, and both land in the order they were made.
      leader.emit([{ elementId: "remover.e0", value: 1, quality: "Good", tsUs: T0 * 1000 }]);
      await eventually(async () => (await readValue(a, "remover.e0"))?.value === 1);
      const lock = new pg.Client({ connectionString: db.url });
      await lock.connect();
      let removal: Promise<string[]> | undefined;
      try {
        await lock.query("BEGIN");
        await lock.query("SELECT 1 FROM current_values WHERE element_id = 'remover.e0' FOR UPDATE");
        leader.emit([{ elementId: "remover.e0", value: 2, quality: "Good", tsUs: (T0 + 1) * 1000 }]);
        removal = context.removeModel(["remover.e1", "remover.nothing"]);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(await ids(a)).toContain("remover.e1");
      } finally {
        await lock.query("COMMIT").catch(() => {});
        await lock.end();
      }
      expect(await removal).toEqual(["remover.e1"]);
      expect((await readValue(a, "remover.e0")).value).toBe(2);
      // The replica that removed it answers at once; the other as soon as the notification arrives.
      const gone = async (server: TestServer) => {
        const value = await postJson(server.url, "/v1/objects/value", { elementIds: ["remover.e1"] });
        return value.body.results[0].responseDetail?.status === 404;
      };
      expect(await gone(a)).toBe(true);
      await eventually(() => gone(other), 5000);
      expect(await ids(other)).not.toContain("remover.e1");
      expect(await children(other)).toEqual(["remover.e0", "remover.e2"]);
      const history = await postJson(other.url, "/v1/objects/history", {
        elementIds: ["remover.e1"],
        startTime: new Date(T0 - 1000).toISOString(),
        endTime: new Date(T0 + 1000).toISOString(),
      });
      expect(history.body.results[0].responseDetail.status).toBe(404);
      // A point the source still sends for it is refused by the write path, not stored under no object.
      leader.emit([{ elementId: "remover.e1", value: 8, quality: "Good", tsUs: (T0 + 1) * 1000 }]);
      leader.emit([{ elementId: "remover.e0", value: 9, quality: "Good", tsUs: (T0 + 2) * 1000 }]);
      await eventually(async () => (await readValue(other, "remover.e0"))?.value === 9);
      expect(await gone(other)).toBe(true);
    } finally {
      await b?.close();
      await a.close();
    }
  });

  it("runs each connector on exactly one replica; another takes over within seconds", async () => {
    const file = files.write(
      "shared.yaml",
      `connectors:\n  - { name: shared, kind: ${TEST_KIND}, prefix: shared, canWrite: true, required: true }\n`,
    );
    const env = { I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file, I3XD_STORE_URL: db.url };
    const a = await startTestServer(env);
    let b: TestServer | undefined;
    try {
      const leader = await eventually(() => runningSource("shared", a.dataDir));
      b = await startTestServer(env);
      const standby = b;
      await eventually(async () => (await connectorState(standby, "shared")) === "standby");
      expect(await connectorState(a, "shared")).toBe("up");
      // A standby connector does not make the replica unready, even when required.
      expect((await getJson(b.url, "/health/ready")).status).toBe(200);
      expect(runningSource("shared", b.dataDir)).toBeUndefined();

      // A model change made by the connector on one replica reaches the caches of the others.
      const listed = async (server: TestServer) =>
        (await getJson(server.url, "/v1/objects")).body.result.map(
          (o: any) => `${o.elementId}=${o.displayName}`,
        );
      expect(await listed(standby)).toContain("shared.e1=shared.e1");
      await leader.context?.applyModel({
        objects: [
          {
            elementId: "shared.e1",
            displayName: "renamed",
            typeElementId: "shared-reading-type",
            parentId: "shared",
          },
          {
            elementId: "shared.extra",
            displayName: "extra",
            typeElementId: "shared-reading-type",
            parentId: "shared",
          },
        ],
      });
      await eventually(async () => {
        const names = await listed(standby);
        return names.includes("shared.e1=renamed") && names.includes("shared.extra=extra");
      });

      leader.emit([{ elementId: "shared.e0", value: 1, quality: "Good", tsUs: T0 * 1000 }]);
      await eventually(async () => (await readValue(standby, "shared.e0")).value === 1);

      // Write-back through the standby reaches the source, which runs on the other replica; the value is
      // stored once the source took it.
      const forwarded = await postJson(
        b.url,
        "/v1/objects/value",
        {
          updates: [
            { elementId: "shared.e0", value: { value: 2 } },
            { elementId: "shared.e1", value: { value: "x" } },
          ],
        },
        { method: "PUT" },
      );
      expect(forwarded.body.results.map((r: any) => r.success || r.responseDetail.status)).toEqual([
        true,
        400,
      ]);
      expect(leader.written).toEqual([{ elementId: "shared.e0", value: 2, source: "plant/shared.e0" }]);
      expect((await readValue(a, "shared.e0")).value).toBe(2);
      // A write-back larger than one notification (8000 bytes) travels in parts and reaches the source whole.
      const large = await postJson(
        b.url,
        "/v1/objects/value",
        { updates: Array.from({ length: 300 }, (_, i) => ({ elementId: "shared.e0", value: { value: i } })) },
        { method: "PUT" },
      );
      expect(large.body.results.every((r: any) => r.success === true)).toBe(true);
      expect(leader.written).toHaveLength(301);
      expect(leader.written.at(-1)).toEqual({
        elementId: "shared.e0",
        value: 299,
        source: "plant/shared.e0",
      });

      const closedAt = Date.now();
      await a.close();
      const successor = await eventually(() => runningSource("shared", standby.dataDir), 15_000);
      const takeoverMs = Date.now() - closedAt;
      expect(takeoverMs).toBeLessThan(6000);
      expect(await connectorState(b, "shared")).toBe("up");
      successor.emit([{ elementId: "shared.e0", value: 3, quality: "Good", tsUs: (T0 + 1000) * 1000 }]);
      await eventually(async () => (await readValue(standby, "shared.e0")).value === 3);
      const written = await postJson(
        b.url,
        "/v1/objects/value",
        { updates: [{ elementId: "shared.e0", value: { value: 4 } }] },
        { method: "PUT" },
      );
      expect(written.body.results[0].success).toBe(true);
      expect(successor.written.map((w) => w.value)).toEqual([4]);

      // Leadership lost with its connection: the connector stops here, and runs again once it is back.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const { rowCount } = await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        expect(rowCount).toBe(1);
      } finally {
        await admin.end();
      }
      await eventually(() => successor.stopped);
      const again = await eventually(() => runningSource("shared", standby.dataDir), 15_000);
      expect(again).not.toBe(successor);
      expect(instances.filter((s) => s.name === "shared" && s.started && !s.stopped)).toHaveLength(1);
    } finally {
      await b?.close();
      await a.close();
    }
  });
});
