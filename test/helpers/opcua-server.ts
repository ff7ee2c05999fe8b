import path from "node:path";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import {
  DataType,
  MessageSecurityMode,
  SecurityPolicy,
  type StatusCode,
  StatusCodes,
  Variant,
  VariantArrayType,
} from "node-opcua-client";
import { OPCUAServer } from "node-opcua-server";

/**
 * An in-process OPC UA server (node-opcua-server) on 127.0.0.1 with a small plant in namespace
 * `PLANT_NAMESPACE`: a Plant folder organizing pump P101 (a PumpType with Speed, Running, Setpoint,
 * Counter, Samples, Status, Band (a Range structure), Limit, Faulty) and tank T201 (with an analog Level carrying EngineeringUnits
 * and EURange, historizing, with values at 2020-01-01T00:00, 00:01 and 00:02Z), and a SuppliesTo
 * reference from the pump to the tank. `extraNamespaces` are registered
 * first, moving the plant's namespace index: a restart with another count renumbers it.
 */

export const PLANT_NAMESPACE = "urn:i3xd:test:plant";

export interface PlantServerOptions {
  port?: number;
  pkiDir: string;
  extraNamespaces?: number;
  /** Extra variables `Bulk.V<n>` (Double) under a Bulk folder, for load tests. */
  bulkVariables?: number;
  /**
   * Secured endpoints only (Sign and SignAndEncrypt, Basic256Sha256), no anonymous users: these
   * user/password pairs, and X.509 user certificates (any one is accepted).
   */
  secured?: { users: Record<string, string> };
  /**
   * Most values the server returns per variable in one HistoryRead, whatever the client asks for (a
   * server's MaxReturnDataValues): a longer history then comes in pages, with continuation points.
   */
  historyValuesPerRead?: number;
}

// The address-space API of node-opcua-server is typed loosely in its public declarations; these are the
// members the plant uses.
// biome-ignore lint/suspicious/noExplicitAny: node-opcua's namespace builder methods take option bags
type Namespace = any;
// biome-ignore lint/suspicious/noExplicitAny: see above
type UANode = any;

export interface PlantServer {
  server: OPCUAServer;
  endpointUrl: string;
  port: number;
  namespace: Namespace;
  /** Variables by browse name (`Speed`, `Level`, `V17`, …). */
  variables: Map<string, UANode>;
  /** Sets a variable's value (and status, source time) as a device would. */
  set(name: string, value: Variant | null, status?: StatusCode, sourceTimestamp?: Date): void;
  stop(): Promise<void>;
}

export async function startPlantServer(options: PlantServerOptions): Promise<PlantServer> {
  const server = new OPCUAServer({
    port: options.port ?? 0,
    hostname: "127.0.0.1",
    serverCertificateManager: new OPCUACertificateManager({
      rootFolder: options.pkiDir,
      automaticallyAcceptUnknownCertificate: true,
      disableFileWatchers: true,
    }),
    // Monitored-item tests use up to 10,000 variables: the default limits are lower.
    serverCapabilities: {
      maxBrowseContinuationPoints: 100,
      maxSessions: 50,
      operationLimits: {
        maxNodesPerRead: 20_000,
        maxNodesPerBrowse: 20_000,
        maxMonitoredItemsPerCall: 20_000,
      },
    },
    ...(options.secured
      ? {
          securityModes: [MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
          securityPolicies: [SecurityPolicy.Basic256Sha256],
          allowAnonymous: false,
          userManager: {
            isValidUser: (user: string, password: string) => options.secured?.users[user] === password,
          },
          userCertificateManager: new OPCUACertificateManager({
            rootFolder: path.join(options.pkiDir, "users"),
            automaticallyAcceptUnknownCertificate: true,
            disableFileWatchers: true,
          }),
        }
      : {}),
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  if (!addressSpace) throw new Error("no address space");
  for (let i = 0; i < (options.extraNamespaces ?? 0); i++) {
    addressSpace.registerNamespace(`urn:i3xd:test:filler:${i}`);
  }
  const ns: Namespace = addressSpace.registerNamespace(PLANT_NAMESPACE);
  const variables = new Map<string, UANode>();

  const pumpType = ns.addObjectType({ browseName: "PumpType", nodeId: "s=PumpType" });
  ns.addVariable({
    componentOf: pumpType,
    browseName: "Speed",
    nodeId: "s=PumpType.Speed",
    dataType: "Double",
    modellingRule: "Mandatory",
  });
  ns.addVariable({
    componentOf: pumpType,
    browseName: "Running",
    nodeId: "s=PumpType.Running",
    dataType: "Boolean",
    modellingRule: "Mandatory",
  });
  const supplies = ns.addReferenceType({
    browseName: "SuppliesTo",
    inverseName: "SuppliedBy",
    subtypeOf: "NonHierarchicalReferences",
    nodeId: "s=SuppliesTo",
  });

  const plant = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Plant", nodeId: "s=Plant" });
  const pump = ns.addObject({
    organizedBy: plant,
    browseName: "P101",
    nodeId: "s=P101",
    typeDefinition: pumpType,
    description: "Supply pump",
    // A NodeVersion is what makes node-opcua raise GeneralModelChangeEvents for a node's changes.
    nodeVersion: "1",
  });
  const tank = ns.addObject({ organizedBy: plant, browseName: "T201", nodeId: "s=T201", nodeVersion: "1" });
  pump.addReference({ referenceType: supplies.nodeId, nodeId: tank.nodeId });

  const add = (
    parent: UANode,
    name: string,
    dataType: string,
    value: Variant,
    writable = true,
    extra = {},
  ) => {
    const v = ns.addVariable({
      componentOf: parent,
      browseName: name,
      nodeId: `s=${parent.browseName.name}.${name}`,
      dataType,
      accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      ...extra,
    });
    v.setValueFromSource(value, StatusCodes.Good);
    variables.set(name, v);
    return v;
  };
  add(pump, "Speed", "Double", new Variant({ dataType: DataType.Double, value: 1450.5 }), true, {
    description: "Shaft speed",
  });
  add(pump, "Running", "Boolean", new Variant({ dataType: DataType.Boolean, value: true }));
  add(pump, "Setpoint", "Int16", new Variant({ dataType: DataType.Int16, value: 10 }));
  add(
    pump,
    "Counter",
    "Int64",
    new Variant({ dataType: DataType.Int64, arrayType: VariantArrayType.Scalar, value: [0x200000, 1] }),
  );
  add(
    pump,
    "Samples",
    "Double",
    new Variant({ dataType: DataType.Double, arrayType: VariantArrayType.Array, value: [1.5, 2.5] }),
    false,
    { valueRank: 1 },
  );
  add(pump, "Status", "String", new Variant({ dataType: DataType.String, value: "ok" }), false);
  // A structure (an ExtensionObject of the standard Range type).
  const rangeType = addressSpace.findDataType("Range");
  add(
    pump,
    "Band",
    "Range",
    new Variant({
      dataType: DataType.ExtensionObject,
      value: addressSpace.constructExtensionObject(rangeType as NonNullable<typeof rangeType>, {
        low: 1,
        high: 9,
      }),
    }),
    false,
  );
  add(pump, "Faulty", "Double", new Variant({ dataType: DataType.Double, value: 1 }), false);
  // A device that refuses what it is sent, whatever the type: its write status is what a test checks.
  const limit = ns.addVariable({
    componentOf: pump,
    browseName: "Limit",
    nodeId: "s=P101.Limit",
    dataType: "Double",
    accessLevel: "CurrentRead | CurrentWrite",
    userAccessLevel: "CurrentRead | CurrentWrite",
    value: {
      get: () => new Variant({ dataType: DataType.Double, value: 5 }),
      set: () => StatusCodes.BadOutOfRange,
    },
  });
  variables.set("Limit", limit);

  const level = ns.addAnalogDataItem({
    componentOf: tank,
    browseName: "Level",
    nodeId: "s=T201.Level",
    dataType: "Double",
    engineeringUnitsRange: { low: 0, high: 5 },
    engineeringUnits: {
      namespaceUri: "http://www.opcfoundation.org/UA/units/un/cefact",
      unitId: 5067859,
      displayName: { text: "m" },
      description: { text: "metre" },
    },
    accessLevel: "CurrentRead",
  });
  // Level keeps its own history (HistoryRead): three values of 2020, the last one still current.
  addressSpace.installHistoricalDataNode(level);
  const perRead = options.historyValuesPerRead;
  if (perRead !== undefined) {
    const historyRead = level.historyRead.bind(level);
    // node-opcua serves exactly what the client asks for; a server with a limit of its own clamps the ask.
    level.historyRead = (context: unknown, details: { numValuesPerNode?: number }, ...rest: unknown[]) => {
      const asked = details.numValuesPerNode ?? 0;
      if (asked === 0 || asked > perRead) details.numValuesPerNode = perRead;
      return historyRead(context, details, ...rest);
    };
  }
  for (const [minute, value] of [
    [0, 1],
    [1, 1.5],
    [2, 2.5],
  ]) {
    level.setValueFromSource(
      new Variant({ dataType: DataType.Double, value }),
      StatusCodes.Good,
      new Date(Date.UTC(2020, 0, 1, 0, minute)),
    );
  }
  variables.set("Level", level);

  if (options.bulkVariables) {
    const bulk = ns.addFolder(plant, { browseName: "Bulk", nodeId: "s=Bulk" });
    for (let i = 0; i < options.bulkVariables; i++) {
      const v = ns.addVariable({
        componentOf: bulk,
        browseName: `V${i}`,
        nodeId: `s=Bulk.V${i}`,
        dataType: "Double",
      });
      v.setValueFromSource(new Variant({ dataType: DataType.Double, value: i }), StatusCodes.Good);
      variables.set(`V${i}`, v);
    }
  }

  await server.start();
  const endpointUrl = server.getEndpointUrl();
  const port = Number(new URL(endpointUrl.replace("opc.tcp", "http")).port);
  return {
    server,
    endpointUrl,
    port,
    namespace: ns,
    variables,
    set(name, value, status = StatusCodes.Good, sourceTimestamp = new Date()) {
      const v = variables.get(name);
      if (!v) throw new Error(`no variable ${name}`);
      v.setValueFromSource(value ?? new Variant({ dataType: DataType.Null }), status, sourceTimestamp);
    },
    async stop() {
      await server.shutdown(0);
    },
  };
}
