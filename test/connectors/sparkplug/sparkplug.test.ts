// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "../../helpers/http.js";
import { sampleValue, scrapeSamples } from "../../helpers/metrics.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import {
  BROKER_URL,
  clearRetained,
  pumpInstance,
  retainedState,
  TestEdgeNode,
  uniqueGroup,
} from "../../helpers/sparkplug-edge-node.js";
import { eventually } from "../test-source.js";

// The Sparkplug B host through the server's public interface: a real Mosquitto (127.0.0.1:1883), a test
// edge node made of `mqtt` + `sparkplug-payload`, and the i3X HTTP API. Each run uses its own group id.

const group = uniqueGroup();
const hostId = `i3xd-test-host-${group}`;
const E = "edge1";
const node = `spBv1.0/${group}/${E}`;
const dev = `${node}/pump-station`;
const files = makeTempDir("i3xd-sparkplug-");
let server: TestServer;
const edge = new TestEdgeNode(group, E);

const pumpDefinition = {
  name: "Pump",
  type: "Template" as const,
  value: {
    isDefinition: true,
    version: "1.0.0",
    metrics: [
      { name: "Speed", type: "Int32", value: 0, properties: { engUnit: { type: "String", value: "rpm" } } },
      { name: "Running", type: "Boolean", value: false },
    ],
    parameters: [{ name: "RatedSpeed", type: "Int32", value: 2900 }],
  },
};

const deviceMetrics = () => [
  { name: "Inputs/Flow", alias: 10, type: "Double" as const, value: 41.5 },
  { name: "Inputs/Pressure", alias: 11, type: "Float" as const, value: 2.5 },
  { name: "Setpoint", alias: 12, type: "Int16" as const, value: 100 },
  { name: "Counter", alias: 13, type: "UInt64" as const, value: "18446744073709551615" },
  {
    name: "Recipe",
    alias: 16,
    type: "DataSet" as const,
    value: {
      numOfColumns: 2,
      columns: ["step", "action"],
      types: ["Int32", "String"],
      rows: [
        [1, "fill"],
        [-2, "drain"],
      ],
    },
  },
  pumpInstance("Pump101", 14),
];

async function readValues(ids: string[], maxDepth?: number): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/value", {
    elementIds: ids,
    ...(maxDepth === undefined ? {} : { maxDepth }),
  });
  expect(res.status).toBe(200);
  return res.body.results.map((r: any) => (r.success ? r.result : r.responseDetail));
}
const currentOf = async (id: string) => (await readValues([id]))[0];
const metricSample = async (name: string, labels: Record<string, string>) =>
  sampleValue(await scrapeSamples(server.url), name, labels);

async function birthAll(): Promise<void> {
  await edge.birth([pumpDefinition as any, { name: "Uptime", alias: 1, type: "Int64", value: 5 }]);
  await edge.deviceBirth("pump-station", deviceMetrics() as any);
}

beforeAll(async () => {
  const file = path.join(files.dir, "connectors.yaml");
  writeFileSync(
    file,
    `connectors:
  - name: spb
    kind: sparkplug
    url: ${BROKER_URL}
    groups: [${group}]
    primaryHostId: ${hostId}
    writable: true
    reorderTimeoutMs: 300
    rebirthMinIntervalMs: 100
`,
  );
  server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
  await eventually(async () => {
    const ready = (await fetch(`${server.url}/health/ready`).then((r) => r.json())) as any;
    return ready.result?.connectors?.some((c: any) => c.name === "spb" && c.state === "up");
  });
  await edge.connect(0);
  await birthAll();
  await eventually(async () => (await currentOf(`${dev}#Pump101#Speed`)).value === 1450);
});

afterAll(async () => {
  await edge.close();
  await server?.close();
  await clearRetained(`spBv1.0/STATE/${hostId}`);
  files.remove();
});

describe("births", () => {
  it("make group, edge node, device, folder and metric objects, each metric a component", async () => {
    const res = await postJson(server.url, "/v1/objects/list", {
      elementIds: [`spBv1.0/${group}`, node, dev, `${dev}#Inputs/`, `${dev}#Inputs/Flow`, `${node}#Uptime`],
      includeMetadata: true,
    });
    const [g, n, d, folder, flow, uptime] = res.body.results.map((r: any) => r.result);
    expect(g).toMatchObject({ displayName: group, parentId: null });
    expect(n).toMatchObject({ displayName: E, parentId: `spBv1.0/${group}`, isComposition: true });
    expect(d).toMatchObject({ displayName: "pump-station", parentId: node, isComposition: true });
    expect(folder).toMatchObject({ displayName: "Inputs", parentId: dev, isComposition: true });
    expect(flow).toMatchObject({
      displayName: "Flow",
      typeElementId: "spBv1.0:Double",
      isComposition: false,
    });
    expect(flow.metadata.system).toMatchObject({
      connector: "spb",
      source: { group, edgeNode: E, device: "pump-station", metric: "Inputs/Flow" },
    });
    expect(uptime.typeElementId).toBe("spBv1.0:Int64");

    const related = await postJson(server.url, "/v1/objects/related", {
      elementIds: [dev],
      relationshipType: "HasComponent",
    });
    const components = related.body.results[0].result.map((r: any) => r.object.elementId).sort();
    expect(components).toEqual(
      [`${dev}#Counter`, `${dev}#Inputs/`, `${dev}#Pump101`, `${dev}#Recipe`, `${dev}#Setpoint`].sort(),
    );
  });

  it("generate object types: datatypes as JSON Schema, Templates as types with their members", async () => {
    const res = await postJson(server.url, "/v1/objecttypes/query", {
      elementIds: [
        "spBv1.0:UInt64",
        "spBv1.0:Int16",
        `spBv1.0:Template/${group}/${E}#Pump`,
        `spBv1.0:Device/${group}/${E}/pump-station`,
      ],
    });
    const [u64, i16, pump, device] = res.body.results.map((r: any) => r.result);
    expect(u64.schema.type).toEqual(["integer", "string"]);
    expect(u64.schema.description).toMatch(/decimal string/);
    expect(i16.schema).toMatchObject({ type: "integer", minimum: -32768, maximum: 32767 });
    expect(pump).toMatchObject({ displayName: "Pump", version: "1.0.0" });
    expect(pump.schema.properties.Speed).toMatchObject({ type: "integer", "x-engUnit": "rpm" });
    expect(pump.schema["x-sparkplugParameters"]).toEqual({ RatedSpeed: 2900 });
    expect(device.schema.properties.Inputs.properties.Flow.type).toBe("number");

    const instance = await postJson(server.url, "/v1/objects/list", { elementIds: [`${dev}#Pump101`] });
    expect(instance.body.results[0].result).toMatchObject({
      typeElementId: `spBv1.0:Template/${group}/${E}#Pump`,
      isComposition: true,
    });
  });

  it("read over a device with maxDepth follows components, not the hierarchy", async () => {
    const [one] = await readValues([dev], 1);
    expect(one.isComposition).toBe(true);
    expect(one.components).toBeUndefined();
    const [all] = await readValues([dev], 0);
    const flat = JSON.stringify(all.components);
    expect(flat).toContain(`${dev}#Inputs/Flow`);
    expect(flat).toContain(`${dev}#Pump101#Speed`);
    const [two] = await readValues([dev], 2);
    expect(Object.keys(two.components).sort()).toEqual(
      [`${dev}#Counter`, `${dev}#Inputs/`, `${dev}#Pump101`, `${dev}#Recipe`, `${dev}#Setpoint`].sort(),
    );
    expect(two.components[`${dev}#Setpoint`]).toMatchObject({ value: 100, quality: "Good" });
  });

  it("store a DataSet as JSON that its type's schema describes", async () => {
    expect(await currentOf(`${dev}#Recipe`)).toMatchObject({
      quality: "Good",
      value: {
        columns: ["step", "action"],
        types: ["Int32", "String"],
        rows: [
          [1, "fill"],
          [-2, "drain"],
        ],
      },
    });
    const type = await postJson(server.url, "/v1/objecttypes/query", { elementIds: ["spBv1.0:DataSet"] });
    expect(type.body.results[0].result.schema.required).toEqual(["columns", "types", "rows"]);
  });

  it("keep UInt64 values beyond 2^53 exact", async () => {
    expect(await currentOf(`${dev}#Counter`)).toMatchObject({
      value: "18446744073709551615",
      quality: "Good",
    });
    await edge.data([{ alias: 13, type: "UInt64", value: "9007199254740993" as any }], "pump-station");
    await eventually(async () => (await currentOf(`${dev}#Counter`)).value === "9007199254740993");
  });
});

describe("data", () => {
  it("arrives by alias with the metric's timestamp", async () => {
    const ts = Date.UTC(2030, 0, 1, 0, 0, 1, 250);
    await edge.data([{ alias: 10, type: "Double", value: 43.25, timestamp: ts }], "pump-station");
    await eventually(async () => (await currentOf(`${dev}#Inputs/Flow`)).value === 43.25);
    expect(await currentOf(`${dev}#Inputs/Flow`)).toMatchObject({
      quality: "Good",
      timestamp: "2030-01-01T00:00:01.250Z",
    });
  });

  it("stores historical metrics in history only, never over a newer current value", async () => {
    const now = Date.now();
    await edge.data([{ alias: 11, type: "Float", value: 3.5, timestamp: now }], "pump-station");
    await eventually(async () => (await currentOf(`${dev}#Inputs/Pressure`)).value === 3.5);
    await edge.data(
      [{ alias: 11, type: "Float", value: 1.25, timestamp: now - 60_000, isHistorical: true }],
      "pump-station",
    );
    const history = async () => {
      const res = await postJson(server.url, "/v1/objects/history", {
        elementIds: [`${dev}#Inputs/Pressure`],
        startTime: new Date(now - 120_000).toISOString(),
        endTime: new Date(now + 1000).toISOString(),
      });
      return res.body.results[0].result.values.map((v: any) => v.value);
    };
    await eventually(async () => (await history()).includes(1.25));
    expect(await currentOf(`${dev}#Inputs/Pressure`)).toMatchObject({ value: 3.5, quality: "Good" });
  });

  it("a sequence gap that outlasts the reorder timeout is counted and a rebirth requested on the broker", async () => {
    const gaps = await metricSample("sparkplug_sequence_gaps_total", { connector: "spb" });
    const before = edge.commandsSetting("Node Control/Rebirth").length;
    const skipped = edge.nextSeq();
    await edge.data([{ alias: 12, type: "Int16", value: 7 }], "pump-station", { seq: (skipped + 1) % 256 });
    const request = await eventually(() => edge.commandsSetting("Node Control/Rebirth")[before]);
    expect(request.topic).toBe(`spBv1.0/${group}/NCMD/${E}`);
    expect(request.payload.metrics?.[0]).toMatchObject({ type: "Boolean", value: true });
    expect(await metricSample("sparkplug_sequence_gaps_total", { connector: "spb" })).toBe(gaps + 1);
    expect(
      await metricSample("sparkplug_rebirth_requests_total", { connector: "spb", reason: "sequence_gap" }),
    ).toBeGreaterThanOrEqual(1);
    // The data that arrived after the gap was kept.
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).value === 7);
    await birthAll();
  });

  it("counts a malformed payload as invalid and goes on", async () => {
    const invalid = await metricSample("connector_messages_total", { connector: "spb", outcome: "invalid" });
    await edge.publishRaw(`spBv1.0/${group}/DDATA/${E}/pump-station`, Buffer.from([0xff, 0xff, 0xff, 0x01]));
    await eventually(
      async () =>
        (await metricSample("connector_messages_total", { connector: "spb", outcome: "invalid" })) ===
        invalid + 1,
    );
    await edge.data([{ alias: 12, type: "Int16", value: 8 }], "pump-station");
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).value === 8);
  });
});

describe("rebirth", () => {
  it("with a changed metric set adds objects and turns the metrics it lacks Bad until they return", async () => {
    const changed = [
      ...deviceMetrics().filter((m) => m.name !== "Setpoint"),
      { name: "Inputs/Level", alias: 15, type: "Float" as const, value: 2.75 },
    ];
    await edge.deviceBirth("pump-station", changed as any);
    await eventually(async () => (await currentOf(`${dev}#Inputs/Level`)).value === 2.75);
    expect(await currentOf(`${dev}#Setpoint`)).toMatchObject({ value: null, quality: "Bad" });
    const [folder] = await readValues([`${dev}#Inputs/`], 2);
    expect(Object.keys(folder.components)).toContain(`${dev}#Inputs/Level`);
    await edge.deviceBirth("pump-station", deviceMetrics() as any);
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).quality === "Good");
  });
});

describe("write-back", () => {
  it("sends a DCMD by alias with the metric's datatype; a value that does not fit sends nothing", async () => {
    const before = edge.commands.length;
    const res = await postJson(
      server.url,
      "/v1/objects/value",
      {
        updates: [
          { elementId: `${dev}#Setpoint`, value: { value: 120 } },
          { elementId: `${dev}#Setpoint`, value: { value: 40000 } },
          { elementId: `${dev}#Counter`, value: { value: "18446744073709551614" } },
        ],
      },
      { method: "PUT" },
    );
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: any) => (r.success ? 200 : r.responseDetail.status))).toEqual([
      200, 400, 200,
    ]);
    const dcmd = await eventually(() => edge.commands.slice(before).find((c) => c.topic.includes("/DCMD/")));
    expect(dcmd.topic).toBe(`spBv1.0/${group}/DCMD/${E}/pump-station`);
    const sent = (dcmd.payload.metrics ?? []).map((m: any) => ({
      alias: String(m.alias),
      type: m.type,
      value: String(m.value),
    }));
    expect(sent).toEqual([
      { alias: "12", type: "Int16", value: "120" },
      { alias: "13", type: "UInt64", value: "18446744073709551614" },
    ]);
    await new Promise((r) => setTimeout(r, 200));
    expect(edge.commands.slice(before).filter((c) => c.topic.includes("/DCMD/"))).toHaveLength(1);
  });
});

describe("write-back to a template member", () => {
  it("sends its instance by alias carrying a Template value with just that member", async () => {
    const before = edge.commands.length;
    const res = await postJson(
      server.url,
      "/v1/objects/value",
      {
        updates: [
          { elementId: `${dev}#Pump101#Speed`, value: { value: 1600 } },
          { elementId: `${dev}#Pump101#Speed`, value: { value: 2 ** 31 } },
        ],
      },
      { method: "PUT" },
    );
    expect(res.body.results.map((r: any) => (r.success ? 200 : r.responseDetail.status))).toEqual([200, 400]);
    const dcmd = await eventually(() => edge.commands.slice(before).find((c) => c.topic.includes("/DCMD/")));
    const [metric] = dcmd.payload.metrics ?? [];
    expect(String(metric.alias)).toBe("14");
    expect(metric.type).toBe("Template");
    const template = metric.value as any;
    expect(template).toMatchObject({ templateRef: "Pump", isDefinition: false });
    expect(template.metrics).toEqual([
      expect.objectContaining({ name: "Speed", type: "Int32", value: 1600 }),
    ]);
  });
});

describe("deaths", () => {
  it("a stale NDEATH (another bdSeq) is ignored", async () => {
    await edge.death(edge.bdSeq + 40);
    await edge.data([{ alias: 12, type: "Int16", value: 9 }], "pump-station");
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).value === 9);
    expect((await currentOf(`${node}#Uptime`)).quality).toBe("Good");
  });

  it("DDEATH marks the device's metrics Bad at the payload's timestamp", async () => {
    const ts = Date.now() + 5;
    await edge.deviceDeath("pump-station", ts);
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).quality === "Bad");
    expect(await currentOf(`${dev}#Pump101#Speed`)).toMatchObject({
      value: null,
      quality: "Bad",
      timestamp: new Date(ts).toISOString(),
    });
    expect((await currentOf(`${node}#Uptime`)).quality).toBe("Good");
    await edge.deviceBirth("pump-station", deviceMetrics() as any);
    await eventually(async () => (await currentOf(`${dev}#Setpoint`)).quality === "Good");
  });

  it("the NDEATH Will of a killed edge node marks everything Bad; a rebirth brings it back Good", async () => {
    const offline = () => metricSample("sparkplug_edge_nodes", { connector: "spb", state: "offline" });
    edge.kill();
    await eventually(async () => (await currentOf(`${node}#Uptime`)).quality === "Bad");
    expect(await currentOf(`${dev}#Inputs/Flow`)).toMatchObject({ value: null, quality: "Bad" });
    expect(await offline()).toBe(1);

    await edge.connect(edge.bdSeq + 1);
    await birthAll();
    await eventually(async () => (await currentOf(`${dev}#Inputs/Flow`)).quality === "Good");
    expect(await currentOf(`${node}#Uptime`)).toMatchObject({ value: 5, quality: "Good" });
    expect(await offline()).toBe(0);
  });
});

describe("primary host", () => {
  it("publishes its STATE online, retained", async () => {
    expect(await retainedState(hostId)).toMatchObject({ online: true, timestamp: expect.any(Number) });
  });
});
