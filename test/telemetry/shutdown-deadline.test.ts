import { afterAll, describe, expect, it } from "vitest";
import { type ChildServer, startChildServer } from "./child.js";
import { startStuckBackends } from "./receivers.js";

// Shutdown with every telemetry back-end stuck (accepting connections, never answering or reading): the
// sinks are flushed side by side under the one documented deadline, TELEMETRY_FLUSH_TIMEOUT_MS, instead
// of each taking its own timeout in turn.

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const FLUSH_TIMEOUT_MS = 2000;

describe("telemetry shutdown deadline", () => {
  it("flushes four stuck sinks in parallel within one TELEMETRY_FLUSH_TIMEOUT_MS", async () => {
    const stuck = await startStuckBackends();
    cleanups.push(() => stuck.close());
    const server: ChildServer = await startChildServer({
      ...stuck.env,
      TELEMETRY_FLUSH_TIMEOUT_MS: String(FLUSH_TIMEOUT_MS),
      I3XD_TEST_FAULTS: "1",
    });
    cleanups.push(() => server.stop());
    // Something queued in every sink: spans and log lines for each request, an error report for the 500s.
    for (let i = 0; i < 20; i++) await fetch(`${server.url}/v1/info`);
    for (let i = 0; i < 5; i++) await fetch(`${server.url}/v1/_test/fault`, { method: "POST" });

    const started = Date.now();
    expect(await server.stop()).toBe(0);
    const took = Date.now() - started;
    // One deadline for all of them, plus the time a loaded machine needs to close the rest and exit; each
    // sink in turn would take at least four deadlines.
    expect(took).toBeLessThan(FLUSH_TIMEOUT_MS * 2 + 1500);
  }, 60_000);
});
