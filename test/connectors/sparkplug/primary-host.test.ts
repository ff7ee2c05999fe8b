// biome-ignore-all lint/suspicious/noExplicitAny: STATE payloads are arbitrary JSON read by assertions
import { writeFileSync } from "node:fs";
import path from "node:path";
import mqtt from "mqtt";
import { afterAll, expect, it } from "vitest";
import { makeTempDir, startTestServer } from "../../helpers/server.js";
import { BROKER_URL, clearRetained, retainedState, uniqueGroup } from "../../helpers/sparkplug-edge-node.js";
import { eventually } from "../test-source.js";

// Primary host STATE over a whole server life: online on connect, online again when another client
// clears it, offline when the server stops. A host id of its own per run; its retained STATE is removed.

const group = uniqueGroup();
const id = `i3xd-test-primary-${group}`;
const files = makeTempDir("i3xd-sparkplug-primary-");
afterAll(async () => {
  await clearRetained(`spBv1.0/STATE/${id}`);
  files.remove();
});

it("says online while running, again when another client says offline, and offline when it stops", async () => {
  const file = path.join(files.dir, "connectors.yaml");
  writeFileSync(
    file,
    `connectors:\n  - { name: primary, kind: sparkplug, url: "${BROKER_URL}", groups: [${group}], primaryHostId: ${id} }\n`,
  );
  const server = await startTestServer({ I3XD_DEMO: "false", I3XD_CONNECTORS_FILE: file });
  try {
    const online = await eventually(async () => {
      const s = await retainedState(id);
      return s.online === true ? s : undefined;
    });
    expect(online.timestamp).toEqual(expect.any(Number));

    const other = await mqtt.connectAsync(BROKER_URL);
    await other.publishAsync(`spBv1.0/STATE/${id}`, JSON.stringify({ online: false, timestamp: 1 }), {
      retain: true,
      qos: 1,
    });
    await other.endAsync();
    const again = await eventually(async () => {
      const s = await retainedState(id);
      return s.online === true ? s : undefined;
    });
    // The same timestamp as the birth and the Will: one host session.
    expect(again.timestamp).toBe(online.timestamp);
  } finally {
    await server.close();
  }
  expect(await retainedState(id)).toMatchObject({ online: false });
});
