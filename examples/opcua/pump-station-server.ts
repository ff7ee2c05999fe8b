/**
 * A small OPC UA server serving the demo pump station (the same process model as i3xd's demo plant) for
 * trying the OPC UA connector: `node --import tsx examples/opcua/pump-station-server.ts [port]`.
 *
 * Address space (namespace `urn:i3xd:example:riverside`, string node ids = the demo's ids): a folder per
 * site and area, an object per demo object; a demo value that is a JSON object becomes an object with one
 * variable per field, a plain value one variable. Measurements carry EngineeringUnits. `pump-101.mode` is
 * writable; the pump supplies the tank (a `SuppliesTo` reference). Values change every second.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { OPCUAServer } from "node-opcua-server";
import { advance, DEMO_IDS, initialState, plantValues, seededRandom } from "../../src/demo/plant-physics.js";

const NAMESPACE = "urn:i3xd:example:riverside";
const port = Number(process.argv[2] ?? process.env.PORT ?? 4840);
const pkiDir = path.resolve(process.env.PKI_DIR ?? "data/example-opcua-server-pki");
mkdirSync(pkiDir, { recursive: true });

/** Where each demo object hangs; the site hangs below the Objects folder. */
const PARENT: Record<string, string | null> = {
  [DEMO_IDS.site]: null,
  [DEMO_IDS.area]: DEMO_IDS.site,
  [DEMO_IDS.pump]: DEMO_IDS.area,
  [DEMO_IDS.pumpState]: DEMO_IDS.pump,
  [DEMO_IDS.motor]: DEMO_IDS.pump,
  [DEMO_IDS.measurements]: DEMO_IDS.pump,
  [DEMO_IDS.bearingTemperature]: DEMO_IDS.measurements,
  [DEMO_IDS.flow]: DEMO_IDS.measurements,
  [DEMO_IDS.dischargePressure]: DEMO_IDS.measurements,
  [DEMO_IDS.motorSpeed]: DEMO_IDS.measurements,
  [DEMO_IDS.tank]: DEMO_IDS.area,
  [DEMO_IDS.highLevelSwitch]: DEMO_IDS.tank,
  [DEMO_IDS.tankTemperatureSensor]: DEMO_IDS.area,
  [DEMO_IDS.pumpVibrationSensor]: DEMO_IDS.area,
  [DEMO_IDS.plc]: DEMO_IDS.area,
};

/** UNECE codes (the unitId of OPC UA's EUInformation) of the measurements. */
const UNITS: Record<string, { symbol: string; unitId: number; description: string }> = {
  [DEMO_IDS.bearingTemperature]: { symbol: "°C", unitId: 4408652, description: "degree Celsius" },
  [DEMO_IDS.tankTemperatureSensor]: { symbol: "°C", unitId: 4408652, description: "degree Celsius" },
  [DEMO_IDS.flow]: { symbol: "m³/h", unitId: 5125972, description: "cubic metre per hour" },
  [DEMO_IDS.dischargePressure]: { symbol: "bar", unitId: 4342098, description: "bar" },
  [DEMO_IDS.motorSpeed]: { symbol: "rpm", unitId: 5395284, description: "revolutions per minute" },
  [DEMO_IDS.pumpVibrationSensor]: { symbol: "mm/s", unitId: 12100, description: "millimetre per second" },
};
const WRITABLE = new Set([`${DEMO_IDS.pump}.mode`]);

const variantOf = (value: unknown): Variant =>
  typeof value === "number"
    ? new Variant({ dataType: DataType.Double, value })
    : typeof value === "boolean"
      ? new Variant({ dataType: DataType.Boolean, value })
      : value === null
        ? new Variant({ dataType: DataType.Null })
        : new Variant({ dataType: DataType.String, value: String(value) });

const dataTypeOf = (value: unknown) =>
  typeof value === "number" ? "Double" : typeof value === "boolean" ? "Boolean" : "String";

const random = seededRandom(101);
const state = initialState(Date.now() * 1000);
const first = plantValues(state, random);

const server = new OPCUAServer({
  port,
  hostname: process.env.HOST ?? "127.0.0.1",
  serverCertificateManager: new OPCUACertificateManager({
    rootFolder: pkiDir,
    // An example accepts any client; a real server keeps unknown clients in its rejected list.
    automaticallyAcceptUnknownCertificate: true,
  }),
  buildInfo: { productName: "i3xd example pump station" },
});
await server.initialize();
const addressSpace = server.engine.addressSpace;
if (!addressSpace) throw new Error("the server has no address space");
// biome-ignore lint/suspicious/noExplicitAny: node-opcua's namespace builder methods take option bags
const ns: any = addressSpace.registerNamespace(NAMESPACE);
const suppliesTo = ns.addReferenceType({
  browseName: "SuppliesTo",
  inverseName: "SuppliedBy",
  subtypeOf: "NonHierarchicalReferences",
  nodeId: "s=SuppliesTo",
});

// biome-ignore lint/suspicious/noExplicitAny: address-space nodes
const nodes = new Map<string, any>();
// biome-ignore lint/suspicious/noExplicitAny: address-space nodes
const variables = new Map<string, any>();

function addVariable(parent: unknown, key: string, name: string, value: unknown) {
  const writable = WRITABLE.has(key);
  const unit = UNITS[key];
  const options = {
    componentOf: parent,
    browseName: name,
    nodeId: `s=${key}`,
    dataType: dataTypeOf(value),
    accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
    userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
  };
  const variable = unit
    ? ns.addAnalogDataItem({
        ...options,
        engineeringUnitsRange: { low: 0, high: 10_000 },
        engineeringUnits: {
          namespaceUri: "http://www.opcfoundation.org/UA/units/un/cefact",
          unitId: unit.unitId,
          displayName: { text: unit.symbol },
          description: { text: unit.description },
        },
      })
    : ns.addVariable(options);
  variable.setValueFromSource(variantOf(value), StatusCodes.Good);
  variables.set(key, variable);
}

for (const [id, value] of first) {
  const parentId = PARENT[id];
  const parent = parentId ? nodes.get(parentId) : addressSpace.rootFolder.objects;
  if (value !== null && typeof value === "object") {
    const object = ns.addObject({
      ...(parentId ? { componentOf: parent } : { organizedBy: parent }),
      browseName: id,
      nodeId: `s=${id}`,
    });
    nodes.set(id, object);
    for (const [field, v] of Object.entries(value)) addVariable(object, `${id}.${field}`, field, v);
  } else {
    addVariable(parent, id, id, value);
  }
}
nodes.get(DEMO_IDS.pump)?.addReference({
  referenceType: suppliesTo.nodeId,
  nodeId: nodes.get(DEMO_IDS.tank)?.nodeId,
});

const tick = setInterval(() => {
  const now = Date.now();
  advance(state, now * 1000, random);
  const at = new Date(now);
  for (const [id, value] of plantValues(state, random)) {
    const fields: [string, unknown][] =
      value !== null && typeof value === "object"
        ? Object.entries(value).map(([f, v]) => [`${id}.${f}`, v])
        : [[id, value]];
    for (const [key, v] of fields) {
      if (WRITABLE.has(key)) continue;
      variables.get(key)?.setValueFromSource(variantOf(v), StatusCodes.Good, at);
    }
  }
}, 1000);

await server.start();
console.log(`OPC UA pump station at ${server.getEndpointUrl()} (namespace ${NAMESPACE}); Ctrl-C stops it`);
const stop = async () => {
  clearInterval(tick);
  await server.shutdown(0);
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
