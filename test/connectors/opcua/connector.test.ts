import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ConnectorSettings } from "../../../src/connectors/connector.js";
import { opcuaKind } from "../../../src/connectors/opcua/index.js";
import type { ModelDocument } from "../../../src/model/format.js";
import { PLANT_NAMESPACE, type PlantServer, startPlantServer } from "../../helpers/opcua-server.js";
import { RecordingContext } from "../recording-context.js";

/**
 * The OPC UA connector against a real in-process OPC UA server, driven through the connector contract
 * with a recording context. The context stands in for the connector framework, which is built
 * separately: these tests pin the connector's side of the contract (what it submits, what model it
 * applies, what states it reports); the end-to-end tests through the i3X API are in api.test.ts.
 */

const NAME = "plant";
const id = (s: string) => `${NAME}:nsu=${PLANT_NAMESPACE};s=${s}`;

type OpcuaConnector = ReturnType<typeof opcuaKind.create>;

/** Starts an `opcua` connector handing over to a recording context (by default one keeping data in `dataDir`). */
async function startConnector(
  name: string,
  options: Record<string, unknown>,
  dataDir: string,
  makeContext = (settings: ConnectorSettings) => new RecordingContext(settings, dataDir),
): Promise<{ connector: OpcuaConnector; context: RecordingContext }> {
  const settings: ConnectorSettings = { name, kind: "opcua", required: false, onLoss: "bad", options };
  const context = makeContext(settings);
  const connector = opcuaKind.create(settings);
  await connector.start(context);
  return { connector, context };
}

describe("OPC UA connector", () => {
  let dir: string;
  let plant: PlantServer;
  let context: RecordingContext;
  let connector: OpcuaConnector;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "i3xd-opcua-"));
    plant = await startPlantServer({ pkiDir: path.join(dir, "server-pki") });
    ({ connector, context } = await startConnector(
      NAME,
      {
        endpointUrl: plant.endpointUrl,
        writable: true,
        subscription: { publishingIntervalMs: 50, samplingIntervalMs: 10 },
        reconnect: { initialDelayMs: 200, maxDelayMs: 1000 },
      },
      path.join(dir, "connector"),
    ));
    await vi.waitFor(() => expect(context.states.at(-1)?.state).toBe("up"), { timeout: 20_000 });
  });

  afterAll(async () => {
    await connector?.stop();
    await plant?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps its certificate in a PKI folder under its data directory", () => {
    expect(statSync(path.join(dir, "connector", "pki", "own", "certs")).isDirectory()).toBe(true);
  });

  it("browses objects, variables, types and relationships with namespace-URI ids", () => {
    const model = context.models.at(-1) as Partial<ModelDocument>;
    const byId = new Map(model.objects?.map((o) => [o.elementId, o]));
    expect(byId.get(id("Plant"))?.parentId).toBeNull();
    expect(byId.get(id("P101"))).toMatchObject({
      parentId: id("Plant"),
      typeElementId: `${NAME}:type:nsu=${PLANT_NAMESPACE};s=PumpType`,
      description: "Supply pump",
    });
    expect(byId.get(id("P101.Speed"))).toMatchObject({ parentId: id("P101"), description: "Shaft speed" });
    expect(byId.get(id("T201.Level"))?.system).toMatchObject({
      source: `nsu=${PLANT_NAMESPACE};s=T201.Level`,
      opcua: { engineeringUnits: { displayName: "m" }, euRange: { low: 0, high: 5 } },
    });
    // EngineeringUnits and EURange are metadata of Level, not elements of their own.
    expect([...byId.keys()].some((k) => k.includes("EURange") || k.includes("EngineeringUnits"))).toBe(false);
    const pumpType = model.objectTypes?.find((t) => t.displayName === "PumpType");
    expect(pumpType?.schema).toEqual({
      type: "object",
      properties: {
        Speed: { anyOf: [{ type: "number" }, { enum: ["NaN", "Infinity", "-Infinity"] }] },
        Running: { type: "boolean" },
      },
    });
    expect(model.relationships).toContainEqual({
      sourceId: id("P101"),
      relationshipType: "HasComponent",
      targetId: id("P101.Speed"),
    });
    const supplies = model.relationshipTypes?.find((t) => t.displayName === "SuppliesTo");
    expect(model.relationshipTypes?.find((t) => t.elementId === supplies?.reverseOf)?.displayName).toBe(
      "SuppliedBy",
    );
    expect(model.relationships).toContainEqual({
      sourceId: id("P101"),
      relationshipType: supplies?.elementId,
      targetId: id("T201"),
    });
    // Nothing of the standard namespace (the Server object) is mapped.
    expect([...byId.keys()].every((k) => k.startsWith(`${NAME}:nsu=${PLANT_NAMESPACE};`))).toBe(true);
  });

  it("maps values, 64-bit integers, arrays and the initial snapshot", async () => {
    await expect.poll(() => context.last(id("P101.Speed"))?.value).toBe(1450.5);
    expect(BigInt(context.last(id("P101.Counter"))?.value as string)).toBe((0x200000n << 32n) + 1n);
    expect(context.last(id("P101.Samples"))?.value).toEqual([1.5, 2.5]);
    expect(context.last(id("P101.Band"))?.value).toEqual({ low: 1, high: 9 });
    expect(context.last(id("P101.Running"))).toMatchObject({ value: true, quality: "Good" });
  });

  it("maps statuses: Uncertain keeps the value, Bad is null, Good null is GoodNoData", async () => {
    const at = new Date("2026-01-02T03:04:05.678Z");
    plant.set(
      "Faulty",
      new Variant({ dataType: DataType.Double, value: 7 }),
      StatusCodes.UncertainLastUsableValue,
      at,
    );
    await expect
      .poll(() => context.last(id("P101.Faulty")))
      .toMatchObject({
        value: 7,
        quality: "Uncertain",
        tsUs: at.getTime() * 1000,
      });
    plant.set("Faulty", new Variant({ dataType: DataType.Double, value: 8 }), StatusCodes.BadSensorFailure);
    await expect.poll(() => context.last(id("P101.Faulty"))).toMatchObject({ value: null, quality: "Bad" });
    plant.set("Faulty", null, StatusCodes.Good);
    await expect
      .poll(() => context.last(id("P101.Faulty")))
      .toMatchObject({ value: null, quality: "GoodNoData" });
  });

  it("writes back with type conversion and answers per item", async () => {
    const write = connector.write?.bind(connector);
    if (!write) throw new Error("the OPC UA connector writes");
    const results = await write([
      { elementId: id("P101.Setpoint"), value: 42, source: `nsu=${PLANT_NAMESPACE};s=P101.Setpoint` },
      { elementId: id("P101.Setpoint"), value: 70000, source: `nsu=${PLANT_NAMESPACE};s=P101.Setpoint` },
      {
        elementId: id("P101.Counter"),
        value: "9007199254740993",
        source: `nsu=${PLANT_NAMESPACE};s=P101.Counter`,
      },
      { elementId: id("P101.Status"), value: "x", source: `nsu=${PLANT_NAMESPACE};s=P101.Status` },
      { elementId: id("P101.Limit"), value: 1, source: `nsu=${PLANT_NAMESPACE};s=P101.Limit` },
      { elementId: id("P101.Running"), value: "yes", source: `nsu=${PLANT_NAMESPACE};s=P101.Running` },
    ]);
    expect(results[0]).toEqual({ ok: true });
    expect(results[1]).toMatchObject({ ok: false, status: 400 });
    expect(results[2]).toEqual({ ok: true });
    expect(results[3]).toMatchObject({ ok: false, status: 403 });
    expect(results[4]).toMatchObject({ ok: false, detail: expect.stringContaining("BadOutOfRange") });
    expect(results[5]).toMatchObject({ ok: false, status: 400 });
    expect(plant.variables.get("Setpoint").readValue().value.value).toBe(42);
    await expect.poll(() => context.last(id("P101.Counter"))?.value).toBe("9007199254740993");
  });

  it("re-browses on a model change: additions appear, removals turn Bad", async () => {
    const ns = plant.namespace;
    const addressSpace = plant.server.engine.addressSpace;
    if (!addressSpace) throw new Error("no address space");
    addressSpace.modelChangeTransaction(() => {
      const v = ns.addVariable({
        componentOf: ns.findNode("s=T201"),
        browseName: "Temperature",
        nodeId: "s=T201.Temperature",
        dataType: "Double",
      });
      v.setValueFromSource(new Variant({ dataType: DataType.Double, value: 12.5 }), StatusCodes.Good);
      addressSpace.deleteNode(plant.variables.get("Status"));
    });
    await expect.poll(() => context.last(id("T201.Temperature"))?.value).toBe(12.5);
    expect(context.objects().some((o) => o.elementId === id("T201.Temperature"))).toBe(true);
    await expect.poll(() => context.last(id("P101.Status"))).toMatchObject({ value: null, quality: "Bad" });
  });
});

describe("OPC UA connector across a server restart", () => {
  let dir: string;
  let plant: PlantServer | undefined;
  let context: RecordingContext;
  let connector: OpcuaConnector;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "i3xd-opcua-"));
    plant = await startPlantServer({ pkiDir: path.join(dir, "server-pki") });
    ({ connector, context } = await startConnector(
      NAME,
      {
        endpointUrl: plant.endpointUrl,
        subscription: { publishingIntervalMs: 50, samplingIntervalMs: 10 },
        reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      },
      path.join(dir, "connector"),
    ));
    await vi.waitFor(() => expect(context.states.at(-1)?.state).toBe("up"), { timeout: 20_000 });
  });

  afterAll(async () => {
    await connector?.stop();
    await plant?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports down when the server stops, and keeps ids when it returns with renumbered namespaces", async () => {
    await expect.poll(() => context.last(id("P101.Speed"))?.value).toBe(1450.5);
    const port = plant?.port as number;
    const indexBefore = plant?.namespace.index;
    await plant?.stop();
    plant = undefined;
    await expect.poll(() => context.states.at(-1)?.state).toBe("down");
    expect(connector.health().state).toBe("down");

    plant = await startPlantServer({ port, pkiDir: path.join(dir, "server-pki"), extraNamespaces: 3 });
    expect(plant.namespace.index).not.toBe(indexBefore);
    plant.set("Speed", new Variant({ dataType: DataType.Double, value: 999 }));
    await expect.poll(() => context.states.at(-1)?.state, { timeout: 20_000 }).toBe("up");
    await expect.poll(() => context.last(id("P101.Speed"))?.value, { timeout: 20_000 }).toBe(999);
    expect(context.reconnects).toBeGreaterThanOrEqual(1);
    // The same ids as before the restart, although the plant's namespace index moved.
    const ids = context.objects().map((o) => o.elementId);
    expect(ids).toContain(id("P101.Speed"));
    expect(ids.every((k) => k.startsWith(`${NAME}:nsu=${PLANT_NAMESPACE};`))).toBe(true);
    plant.set("Speed", new Variant({ dataType: DataType.Double, value: 1000 }));
    await expect.poll(() => context.last(id("P101.Speed"))?.value).toBe(1000);

    // Again, with the namespaces as they were: the values are read afresh, nothing is browsed twice over.
    const downs = context.states.filter((s) => s.state === "down").length;
    await plant.stop();
    await expect.poll(() => context.states.filter((s) => s.state === "down").length).toBe(downs + 1);
    plant = await startPlantServer({ port, pkiDir: path.join(dir, "server-pki"), extraNamespaces: 3 });
    await expect.poll(() => context.states.at(-1)?.state, { timeout: 20_000 }).toBe("up");
    await expect.poll(() => context.last(id("P101.Speed"))).toMatchObject({ value: 1450.5, quality: "Good" });
  });
});

describe("OPC UA connector on a secured server", () => {
  let dir: string;
  let plant: PlantServer;
  const running: OpcuaConnector[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "i3xd-opcua-secure-"));
    plant = await startPlantServer({
      pkiDir: path.join(dir, "server-pki"),
      secured: { users: { i3xd: "s3cret" } },
    });
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await plant?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(name: string, options: Record<string, unknown>): Promise<RecordingContext> {
    const { connector, context } = await startConnector(
      name,
      { endpointUrl: plant.endpointUrl, reconnect: { initialDelayMs: 200, maxDelayMs: 500 }, ...options },
      path.join(dir, name),
    );
    running.push(connector);
    return context;
  }

  it("connects with SignAndEncrypt and a user once the server certificate is in the trust list", async () => {
    const context = await start("signed", {
      securityMode: "SignAndEncrypt",
      securityPolicy: "Basic256Sha256",
      identity: { type: "username", username: "i3xd", password: "s3cret" },
    });
    await expect.poll(() => context.states.at(-1)?.state, { timeout: 15_000 }).toBe("down");
    expect(context.states.some((s) => s.state === "up")).toBe(false);
    // Trusting the server as an operator does: its certificate moves from rejected/ to trusted/certs/.
    const pki = path.join(dir, "signed", "pki");
    const [rejected] = readdirSync(path.join(pki, "rejected"));
    if (!rejected) throw new Error("the refused server certificate is not in rejected/");
    renameSync(path.join(pki, "rejected", rejected), path.join(pki, "trusted", "certs", rejected));
    await expect.poll(() => context.states.at(-1)?.state, { timeout: 20_000 }).toBe("up");
    await expect.poll(() => context.last(id("P101.Speed").replace(NAME, "signed"))?.value).toBe(1450.5);
  });

  it("stays down, saying why, when the server refuses the user", async () => {
    const context = await start("refused", {
      securityMode: "Sign",
      trustServerCertificate: true,
      identity: { type: "username", username: "i3xd", password: "wrong" },
    });
    await expect.poll(() => context.states.at(-1)?.detail ?? "", { timeout: 15_000 }).toMatch(/Bad/);
    expect(context.states.some((s) => s.state === "up")).toBe(false);
    expect(JSON.stringify(context.states)).not.toContain("wrong");
  });

  it("connects with an X.509 user identity", async () => {
    const key = path.join(dir, "user-key.pem");
    const cert = path.join(dir, "user-cert.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=i3xd-user",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      // Only PATH: node-opcua's PKI code points OPENSSL_CONF at a configuration of its own.
      { stdio: "ignore", env: { PATH: process.env.PATH } },
    );
    const context = await start("x509", {
      securityMode: "SignAndEncrypt",
      trustServerCertificate: true,
      identity: { type: "certificate", certificateFile: cert, privateKeyFile: key },
    });
    await expect.poll(() => context.states.at(-1)?.state, { timeout: 20_000 }).toBe("up");
  });
});

describe("OPC UA connector settings", () => {
  let dir: string;
  let plant: PlantServer;
  const running: OpcuaConnector[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "i3xd-opcua-settings-"));
    plant = await startPlantServer({ pkiDir: path.join(dir, "server-pki") });
  });
  afterAll(async () => {
    for (const c of running) await c.stop();
    await plant?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(
    name: string,
    options: Record<string, unknown>,
    makeContext?: (settings: ConnectorSettings) => RecordingContext,
  ) {
    const { connector, context: ctx } = await startConnector(
      name,
      {
        endpointUrl: plant.endpointUrl,
        subscription: { publishingIntervalMs: 50, samplingIntervalMs: 0, ...(options.subscription ?? {}) },
        ...options,
      },
      path.join(dir, name),
      makeContext,
    );
    running.push(connector);
    await vi.waitFor(() => expect(ctx.states.at(-1)?.state).toBe("up"), { timeout: 20_000 });
    return ctx;
  }
  const speedOf = (c: string) => `${c}:nsu=${PLANT_NAMESPACE};s=P101.Speed`;
  const setSpeed = (value: number) => plant.set("Speed", new Variant({ dataType: DataType.Double, value }));

  it("applies an absolute deadband to numeric variables", async () => {
    const context = await start("deadband", { subscription: { deadband: { type: "absolute", value: 5 } } });
    setSpeed(100);
    await expect.poll(() => context.last(speedOf("deadband"))?.value).toBe(100);
    setSpeed(102);
    setSpeed(103);
    setSpeed(120);
    await expect.poll(() => context.last(speedOf("deadband"))?.value).toBe(120);
    const seen = context.points.filter((p) => p.elementId === speedOf("deadband")).map((p) => p.value);
    expect(seen).not.toContain(102);
    expect(seen).not.toContain(103);
  });

  it("stops publishing while the write queue is full and catches up once it drains", async () => {
    let full = false;
    let release: () => void = () => {};
    const context = await start("paused", {}, (settings) => {
      const c = new RecordingContext(settings, path.join(dir, "paused"));
      c.submit = (points) => {
        c.points.push(...points);
        return !full;
      };
      c.drained = () => new Promise<void>((resolve) => (release = resolve));
      return c;
    });
    setSpeed(200);
    await expect.poll(() => context.last(speedOf("paused"))?.value).toBe(200);
    full = true;
    setSpeed(201);
    await expect.poll(() => context.last(speedOf("paused"))?.value).toBe(201);
    // The submit that filled the queue paused publishing: once the server confirmed it, later changes
    // wait on the server.
    const connector = running.at(-1);
    await expect.poll(() => connector?.health().extra?.publishing).toBe("paused");
    full = false;
    setSpeed(202);
    await new Promise((r) => setTimeout(r, 500));
    expect(context.last(speedOf("paused"))?.value).toBe(201);
    release();
    await expect.poll(() => context.last(speedOf("paused"))?.value).toBe(202);
  });

  it("re-browses on an interval when the server raises no model-change event", async () => {
    const context = await start("interval", { rebrowse: { onModelChange: false, intervalSeconds: 1 } });
    const ns = plant.namespace;
    const v = ns.addVariable({
      componentOf: ns.findNode("s=Plant"),
      browseName: "Pressure",
      nodeId: "s=Plant.Pressure",
      dataType: "Double",
    });
    v.setValueFromSource(new Variant({ dataType: DataType.Double, value: 3.25 }), StatusCodes.Good);
    await expect
      .poll(() => context.last(`interval:nsu=${PLANT_NAMESPACE};s=Plant.Pressure`)?.value, {
        timeout: 10_000,
      })
      .toBe(3.25);
  });

  it("bounds the browse by maxNodes and counts what it left out", async () => {
    const context = await start("bounded", { maxNodes: 3 });
    expect(context.objects()).toHaveLength(3);
    expect(context.countsStarting("invalid")).toBeGreaterThan(0);
  });
});
