import { loadConfig } from "../../src/config.js";
import { startServer } from "../../src/runtime.js";

/**
 * The soak test's server, run in its own process (`node --expose-gc --import tsx`) so its heap can be
 * measured alone. Heap figures travel over the IPC channel of `fork`, which no HTTP client can reach: the
 * server itself needs no test-only route.
 */
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc || !process.send) throw new Error("run with --expose-gc as a forked child process");

const server = await startServer(loadConfig(process.env));
process.send({ type: "ready", url: server.url });

process.on("message", async (message: { type: string }) => {
  if (message.type === "heap") {
    // Two passes: the first can leave objects whose finalizers free more on the second.
    gc();
    gc();
    process.send?.({
      type: "heap",
      heapUsed: process.memoryUsage().heapUsed,
      stats: server.services.subscriptions.stats(),
    });
  } else if (message.type === "stop") {
    await server.close("soak test done");
    process.exit(0);
  }
});
