import { describe, expect, it } from "vitest";
import { splitForPayloads } from "../../src/store/postgres/pg-connector-relay.js";
import { PAYLOAD_MAX_BYTES } from "../../src/store/postgres/pg-notify.js";

// How the relay between replicas cuts a message into NOTIFY payloads (the relay itself is exercised end to
// end by test/connectors/postgres.test.ts and test/connectors/opcua/replicas.test.ts).
describe("splitting a relayed message into notifications", () => {
  const head = { t: "res", id: "5f0c7c2e-9a51-4c38-9a3e-1f7d1c1d2b3a" };
  const payloadsOf = (body: string) =>
    splitForPayloads(head, body).map((d, n, all) => JSON.stringify({ ...head, n, of: all.length, d }));

  it.each([
    ["ASCII", JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ value: i, quality: "Good" })))],
    ["quotes and backslashes", JSON.stringify(Array.from({ length: 3000 }, () => 'a "b" \\c'))],
    [
      "multi-byte text and surrogate pairs",
      JSON.stringify(Array.from({ length: 4000 }, () => "Füllstand 🛢️ 水位")),
    ],
  ])("keeps every payload under the limit and the body whole: %s", (_, body) => {
    const payloads = payloadsOf(body);
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(PAYLOAD_MAX_BYTES);
    const joined = payloads.map((p) => (JSON.parse(p) as { d: string }).d).join("");
    expect(joined).toBe(body);
    // No part ends inside a surrogate pair: each one is valid UTF-16 on its own.
    for (const p of payloads) expect((JSON.parse(p) as { d: string }).d.isWellFormed()).toBe(true);
  });

  it("sends a short or empty body in one payload", () => {
    expect(splitForPayloads(head, "[]")).toEqual(["[]"]);
    expect(splitForPayloads(head, "")).toEqual([""]);
  });
});
