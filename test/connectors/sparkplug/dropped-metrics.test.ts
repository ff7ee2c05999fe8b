// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, postJson } from "../../helpers/http.js";
import { makeTempDir, startTestServer, type TestServer } from "../../helpers/server.js";
import {
  BROKER_URL,
  type Metric,
  pumpInstance,
  TestEdgeNode,
  uniqueGroup,
} from "../../helpers/sparkplug-edge-node.js";
import { eventually } from "../test-source.js";

// What a later birth that no longer lists some metrics does to the model, with `removeDroppedMetrics` on
// (the metrics, their template members and the folders they leave go, history included; a rebirth brings
// them back) and off (they stay, Bad). Real Mosquitto, a test edge node per connector, the i3X HTTP API.

const E = "edge1";
const DEVICE = "station";
const files = makeTempDir("i3xd-sparkplug-dropped-");
let server: TestServer;
const started = Date.now();

const pumpDefinition = {
  name: "Pump",
  type: "Template",
  value: {
    isDefinition: true,
    metrics: [
      { name: "Speed", type: "Int32", value: 0 },
      { name: "Running", type: "Boolean", value: false },
    ],
  },
} as Metric;

const fullSet = (setpoint = 100): Metric[] => [
  { name: "Inputs/Flow", alias: 10, type: "Double", value: 41.5 },
  { name: "Inputs/Pressure", alias: 11, type: "Float", value: 2.5 },
  { name: "Mode/Auto/Enabled", alias: 12, type: "Boolean", value: true },
  { name: "Setpoint", alias: 13, type: "Int16", value: setpoint },
  pumpInstance("Pump101", 14),
];

/** The full set without Setpoint, Pump101 (a template instance), the Mode folders and Inputs/Pressure. */
const reducedSet = (): Metric[] => [
  { name: "Inputs/Flow", alias: 10, type: "Double", value: 42 },
  { name: "Inputs/Level", alias: 15, type: "Float", value: 2.75 },
];

/** What the reduced birth drops, from metrics to the folders they leave empty. */
const droppedPaths = [
  "Setpoint",
  "Inputs/Pressure",
  "Pump101",
  "Pump101#Speed",
  "Pump101#Running",
  "Mode/Auto/Enabled",
  "Mode/Auto/",
  "Mode/",
];

interface Plant {
  connector: string;
  group: string;
  edge: TestEdgeNode;
  device: string;
}

function plant(connector: string): Plant {
  const group = uniqueGroup(`i3xd-${connector}`);
  return { connector, group, edge: new TestEdgeNode(group, E), device: `spBv1.0/${group}/${E}/${DEVICE}` };
}

const removing = plant("spdrop");
const keeping = plant("spkeep");

async function birth(p: Plant, metrics: Metric[]): Promise<void> {
  await p.edge.birth([pumpDefinition, { name: "Uptime", alias: 1, type: "Int64", value: 5 }]);
  await p.edge.deviceBirth(DEVICE, metrics);
}

/** Each id's value result, or its error status when the item failed. */
async function values(ids: string[]): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/value", { elementIds: ids });
  expect(res.status).toBe(200);
  return res.body.results.map((r: any) => (r.success ? r.result : r.responseDetail.status));
}

/** Each id's object, or its error status when the item failed. */
async function objects(ids: string[]): Promise<any[]> {
  const res = await postJson(server.url, "/v1/objects/list", { elementIds: ids });
  expect(res.status).toBe(200);
  return res.body.results.map((r: any) => (r.success ? r.result : r.responseDetail.status));
}

async function history(id: string): Promise<any> {
  const res = await postJson(server.url, "/v1/objects/history", {
    elementIds: [id],
    startTime: new Date(started - 60_000).toISOString(),
    endTime: new Date(Date.now() + 60_000).toISOString(),
  });
  expect(res.status).toBe(200);
  const item = res.body.results[0];
  return item.success ? item.result.values : item.responseDetail.status;
}

async function components(id: string): Promise<string[]> {
  const res = await postJson(server.url, "/v1/objects/related", {
    elementIds: [id],
    relationshipType: "HasComponent",
  });
  return res.body.results[0].result.map((r: any) => r.object.elementId).sort();
}

async function subscriptionCall(route: string, body: Record<string, unknown>): Promise<any> {
  const res = await postJson(server.url, `/v1/subscriptions${route}`, { clientId: "dropped", ...body });
  expect(res.status).toBe(200);
  return res.body;
}

beforeAll(async () => {
  const file = path.join(files.dir, "connectors.yaml");
  writeFileSync(
    file,
    `connectors:
  - name: ${removing.connector}
    kind: sparkplug
    url: ${BROKER_URL}
    groups: [${removing.group}]
    removeDroppedMetrics: true
  - name: ${keeping.connector}
    kind: sparkplug
    url: ${BROKER_URL}
    groups: [${keeping.group}]
`,
  );
  server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
  await eventually(async () => {
    const ready = (await getJson(server.url, "/health/ready")).body;
    return ready.result?.connectors?.filter((c: any) => c.state === "up").length === 2;
  });
  for (const p of [removing, keeping]) {
    await p.edge.connect(0);
    await birth(p, fullSet());
    // A later millisecond than the birth's, so history holds both points.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await p.edge.data([{ alias: 13, type: "Int16", value: 101 }], DEVICE);
  }
  for (const p of [removing, keeping])
    await eventually(async () => (await values([`${p.device}#Setpoint`]))[0].value === 101);
});

afterAll(async () => {
  await removing.edge.close();
  await keeping.edge.close();
  await server?.close();
  files.remove();
});

describe("a birth that no longer lists metrics", () => {
  it("with removeDroppedMetrics removes them, their members and emptied folders; a rebirth brings them back", async () => {
    const dev = removing.device;
    const dropped = droppedPaths.map((p) => `${dev}#${p}`);
    const setpoint = `${dev}#Setpoint`;
    const sub = await subscriptionCall("", { displayName: "dropped metrics" });
    const subscriptionId = sub.result.subscriptionId;
    const registered = await subscriptionCall("/register", { subscriptionId, elementIds: [setpoint] });
    expect(registered.success).toBe(true);
    expect(await history(setpoint)).toHaveLength(2);

    await removing.edge.deviceBirth(DEVICE, reducedSet());
    await eventually(async () => (await values([`${dev}#Inputs/Level`]))[0].value === 2.75);
    await eventually(async () => (await objects([setpoint]))[0] === 404);
    expect(await objects(dropped)).toEqual(dropped.map(() => 404));
    expect(await values(dropped)).toEqual(dropped.map(() => 404));
    expect(await history(setpoint)).toBe(404);
    const listed = (await getJson(server.url, "/v1/objects")).body.result.map((o: any) => o.elementId);
    for (const id of dropped) expect(listed).not.toContain(id);
    // What the birth still lists stays, the folder it shares with a dropped metric included.
    expect(await components(dev)).toEqual([`${dev}#Inputs/`]);
    expect(await components(`${dev}#Inputs/`)).toEqual([`${dev}#Inputs/Flow`, `${dev}#Inputs/Level`]);
    expect((await values([`${dev}#Inputs/Flow`]))[0]).toMatchObject({ value: 42, quality: "Good" });

    // A subscription watching a removed metric goes on: nothing more to deliver, nothing failing.
    expect((await subscriptionCall("/sync", { subscriptionId })).result).toEqual([]);
    const shown = await subscriptionCall("/list", { subscriptionIds: [subscriptionId] });
    expect(shown.results[0].result.monitoredObjects).toEqual([{ elementId: setpoint, maxDepth: 1 }]);

    // The edge node lists them again: they are created anew, with a fresh history, and the
    // subscription receives the metric it still watches.
    await removing.edge.deviceBirth(DEVICE, fullSet(120));
    await eventually(async () => (await values([setpoint]))[0]?.value === 120);
    expect((await objects(dropped)).map((o) => o.elementId)).toEqual(dropped);
    expect((await history(setpoint)).map((v: any) => v.value)).toEqual([120]);
    expect(await values([`${dev}#Pump101#Speed`])).toEqual([expect.objectContaining({ value: 1450 })]);
    expect(await components(`${dev}#Mode/`)).toEqual([`${dev}#Mode/Auto/`]);
    const again = await subscriptionCall("/sync", { subscriptionId });
    expect(again.result.flatMap((b: any) => b.updates)).toContainEqual(
      expect.objectContaining({ elementId: setpoint, value: 120, quality: "Good" }),
    );
    const unregistered = await subscriptionCall("/unregister", { subscriptionId, elementIds: [setpoint] });
    expect(unregistered.success).toBe(true);
  });

  it("without the option keeps them, Bad, with their folders and history", async () => {
    const dev = keeping.device;
    const kept = droppedPaths.map((p) => `${dev}#${p}`);
    const setpoint = `${dev}#Setpoint`;
    await keeping.edge.deviceBirth(DEVICE, reducedSet());
    await eventually(async () => (await values([`${dev}#Inputs/Level`]))[0].value === 2.75);
    await eventually(async () => (await values([setpoint]))[0].quality === "Bad");
    expect((await objects(kept)).map((o) => o.elementId)).toEqual(kept);
    expect(await values([setpoint, `${dev}#Inputs/Pressure`, `${dev}#Mode/Auto/Enabled`])).toEqual([
      expect.objectContaining({ value: null, quality: "Bad" }),
      expect.objectContaining({ value: null, quality: "Bad" }),
      expect.objectContaining({ value: null, quality: "Bad" }),
    ]);
    expect((await history(setpoint)).map((v: any) => v.value)).toEqual([100, 101, null]);
    expect(await components(dev)).toEqual(
      [`${dev}#Inputs/`, `${dev}#Mode/`, `${dev}#Pump101`, `${dev}#Setpoint`].sort(),
    );
    await keeping.edge.deviceBirth(DEVICE, fullSet());
    await eventually(async () => (await values([setpoint]))[0].quality === "Good");
  });
});
