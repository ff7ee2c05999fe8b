/**
 * The OPC UA server of the bench's opcua case, in a process of its own so that its CPU is not i3xd's:
 * VARIABLES Double variables `Bench.V<n>` (namespace urn:i3xd:bench) on 127.0.0.1, a free port. Prints
 * `{"port": <control port>, "endpointUrl": "opc.tcp://…"}` and then takes, on its HTTP control port,
 * `GET /info` (the endpoint again) and `POST /run?rate=<changes per second>&seconds=<n>`: changes the variables round-robin at that rate (each
 * value stamped with the wall-clock time it was set, which the case reads back as the source timestamp),
 * answering `{"changes": n, "seconds": s, "cpuSeconds": c}` when done.
 */
import http from "node:http";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { OPCUAServer } from "node-opcua-server";

// node-opcua writes its notices to the console; stdout carries only the line the harness reads.
console.log = (...args) => process.stderr.write(`${args.join(" ")}\n`);

const VARIABLES = Number(process.env.VARIABLES ?? 2000);
const server = new OPCUAServer({
  port: 0,
  hostname: "127.0.0.1",
  serverCertificateManager: new OPCUACertificateManager({
    rootFolder: process.env.PKI_DIR,
    automaticallyAcceptUnknownCertificate: true,
    disableFileWatchers: true,
  }),
  serverCapabilities: {
    maxSessions: 10,
    operationLimits: { maxNodesPerRead: 20_000, maxNodesPerBrowse: 20_000, maxMonitoredItemsPerCall: 20_000 },
  },
});
await server.initialize();
const addressSpace = server.engine.addressSpace;
const ns = addressSpace.registerNamespace("urn:i3xd:bench");
const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: "Bench", nodeId: "s=Bench" });
const variables = [];
for (let i = 0; i < VARIABLES; i++) {
  const v = ns.addVariable({
    componentOf: folder,
    browseName: `V${i}`,
    nodeId: `s=Bench.V${i}`,
    dataType: "Double",
    // Reported on change rather than sampled: a sampled variable bounds both rate and latency by the
    // server's sampling interval, which is not what the case measures.
    minimumSamplingInterval: 0,
  });
  v.setValueFromSource(new Variant({ dataType: DataType.Double, value: 0 }), StatusCodes.Good);
  variables.push(v);
}
await server.start();

let next = 0;
let counter = 0;
async function run(rate, seconds) {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let changes = 0;
  // Ticks of 5 ms; each makes up the changes the rate owes by now, so a late tick catches up.
  while (performance.now() < end) {
    const owed = Math.floor(((performance.now() - t0) / 1000) * rate) - changes;
    const at = new Date();
    for (let i = 0; i < owed; i++) {
      counter++;
      variables[next].setValueFromSource(
        new Variant({ dataType: DataType.Double, value: counter }),
        StatusCodes.Good,
        at,
      );
      next = (next + 1) % variables.length;
    }
    changes += Math.max(0, owed);
    await new Promise((r) => setTimeout(r, 5));
  }
  const cpu = process.cpuUsage(cpu0);
  return { changes, seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

const control = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (req.method === "POST" && url.pathname === "/run") {
    const result = await run(Number(url.searchParams.get("rate")), Number(url.searchParams.get("seconds")));
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(result));
    return;
  }
  if (req.method === "GET" && url.pathname === "/info") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ endpointUrl: server.getEndpointUrl(), variables: VARIABLES }));
    return;
  }
  res.statusCode = 404;
  res.end();
});
control.listen(0, "127.0.0.1", () => {
  process.stdout.write(
    `${JSON.stringify({ port: control.address().port, endpointUrl: server.getEndpointUrl() })}\n`,
  );
});
process.on("SIGTERM", async () => {
  await server.shutdown(0);
  process.exit(0);
});
