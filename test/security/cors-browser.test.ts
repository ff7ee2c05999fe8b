// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBrowser } from "../helpers/browser.js";
import { getRaw } from "../helpers/http.js";
import { corsRejections } from "../helpers/metrics.js";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

// A real browser (Chromium) on a page served from another origin calls i3xd as an i3X web application
// would: it reads, writes with a read-write key and follows a subscription stream with fetch and a
// readable stream. A page on an origin I3XD_CORS_ORIGINS does not list is blocked by the browser itself.

const SENSOR = "sensor-001"; // a plain number in the demo plant

/** An empty HTML page on its own port, so it is an origin of its own (the scheme, host and port count). */
async function servePage(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.url === "/") {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(
        '<!doctype html><html><head><meta charset="utf-8"><title>i3X client</title></head></html>',
      );
      return;
    }
    // No favicon: an answer without a body keeps the console free of a failed load.
    response.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const browser = useBrowser();
const temp = makeTempDir("i3xd-cors-browser-");
let server: TestServer;
let keys: Record<string, TestKey>;
let allowedPage: Awaited<ReturnType<typeof servePage>>;
let otherPage: Awaited<ReturnType<typeof servePage>>;

beforeAll(async () => {
  allowedPage = await servePage();
  otherPage = await servePage();
  const written = await writeTestKeys(temp.dir, {
    viewer: { scopes: ["read"] },
    operator: { scopes: ["read", "write"] },
  });
  keys = written.keys;
  server = await startTestServer({ I3XD_KEYS_FILE: written.file, I3XD_CORS_ORIGINS: allowedPage.origin });
});
afterAll(async () => {
  await server?.close();
  await allowedPage?.close();
  await otherPage?.close();
  temp.remove();
});

describe("a browser page on an allowed origin", () => {
  it("reads values, writes one with a read-write key, and reads the headers and errors it needs", async () => {
    const { page, consoleErrors, close } = await browser.newPage();
    try {
      await page.goto(`${allowedPage.origin}/`);
      const result = await page.evaluate(
        async ({ api, viewer, operator, sensor }) => {
          const call = async (method: string, path: string, key: string, body?: unknown) => {
            const res = await fetch(`${api}${path}`, {
              method,
              headers: {
                authorization: `Bearer ${key}`,
                ...(body === undefined ? {} : { "content-type": "application/json" }),
              },
              body: body === undefined ? undefined : JSON.stringify(body),
            });
            return {
              status: res.status,
              requestId: res.headers.get("x-request-id"),
              body: (await res.json()) as any,
            };
          };
          return {
            namespaces: await call("GET", "/v1/namespaces", viewer),
            before: await call("POST", "/v1/objects/value", viewer, { elementIds: [sensor] }),
            denied: await call("PUT", "/v1/objects/value", viewer, {
              updates: [{ elementId: sensor, value: { value: 1 } }],
            }),
            write: await call("PUT", "/v1/objects/value", operator, {
              updates: [{ elementId: sensor, value: { value: 42.5, quality: "Good" } }],
            }),
            after: await call("POST", "/v1/objects/value", viewer, { elementIds: [sensor] }),
          };
        },
        { api: server.url, viewer: keys.viewer.token, operator: keys.operator.token, sensor: SENSOR },
      );
      expect(result.namespaces.status).toBe(200);
      expect(result.namespaces.body.result.length).toBeGreaterThan(0);
      expect(result.before.status).toBe(200);
      expect(result.before.body.results[0]).toMatchObject({ success: true, elementId: SENSOR });
      // The page can read why a call failed, and the request id to quote for it.
      expect(result.denied.status).toBe(403);
      expect(result.denied.body.responseDetail.detail).toContain('"write" scope');
      expect(result.denied.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(result.write.status).toBe(200);
      expect(result.write.body.results[0]).toMatchObject({ success: true, elementId: SENSOR });
      expect(result.after.body.results[0].result).toMatchObject({ value: 42.5, quality: "Good" });
      // The write really happened on the server.
      const check = await getRaw(
        `${server.url}/v1/objects/value`,
        { "content-type": "application/json", ...bearer(keys.viewer) },
        "POST",
        JSON.stringify({ elementIds: [SENSOR] }),
      );
      expect(JSON.parse(check.body.toString("utf8")).results[0].result.value).toBe(42.5);
      // Chromium logs the 403 as a failed load; nothing else, and no CORS complaint.
      expect(consoleErrors.filter((e) => !/status of 403/.test(e))).toEqual([]);
    } finally {
      await close();
    }
  });

  it("receives a subscription update over SSE with fetch and a readable stream", async () => {
    const { page, consoleErrors, close } = await browser.newPage();
    try {
      await page.goto(`${allowedPage.origin}/`);
      const result = await page.evaluate(
        async ({ api, viewer, operator, sensor }) => {
          const json = (key: string) => ({
            authorization: `Bearer ${key}`,
            "content-type": "application/json",
          });
          const post = async (path: string, body: unknown): Promise<any> =>
            (
              await fetch(`${api}${path}`, {
                method: "POST",
                headers: json(viewer),
                body: JSON.stringify(body),
              })
            ).json();
          const clientId = "browser-explorer";
          const { subscriptionId } = (await post("/v1/subscriptions", { clientId })).result;
          await post("/v1/subscriptions/register", { clientId, subscriptionId, elementIds: [sensor] });
          const abort = new AbortController();
          // A deadline, not a timing assertion: without it a missing update would hang until the test timeout.
          const deadline = setTimeout(() => abort.abort(), 15_000);
          const stream = await fetch(`${api}/v1/subscriptions/stream`, {
            method: "POST",
            headers: { ...json(viewer), accept: "text/event-stream" },
            body: JSON.stringify({ clientId, subscriptionId }),
            signal: abort.signal,
          });
          const write = await fetch(`${api}/v1/objects/value`, {
            method: "PUT",
            headers: json(operator),
            body: JSON.stringify({
              updates: [{ elementId: sensor, value: { value: 77.25, quality: "Good" } }],
            }),
          });
          const events: unknown[] = [];
          let text = "";
          let error: string | undefined;
          try {
            const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
            const decoder = new TextDecoder();
            while (!events.some((e: any) => e.elementId === sensor && e.value === 77.25)) {
              const { value, done } = await reader.read();
              if (done) break;
              text += decoder.decode(value, { stream: true });
              let cut = text.indexOf("\n\n");
              while (cut >= 0) {
                const block = text.slice(0, cut);
                text = text.slice(cut + 2);
                if (block.startsWith("data: ")) events.push(...JSON.parse(block.slice(6)));
                cut = text.indexOf("\n\n");
              }
            }
          } catch (err) {
            error = String(err);
          } finally {
            clearTimeout(deadline);
            abort.abort();
          }
          return {
            status: stream.status,
            contentType: stream.headers.get("content-type"),
            requestId: stream.headers.get("x-request-id"),
            writeStatus: write.status,
            events,
            error,
          };
        },
        { api: server.url, viewer: keys.viewer.token, operator: keys.operator.token, sensor: SENSOR },
      );
      expect(result.error).toBeUndefined();
      expect(result.status).toBe(200);
      expect(result.contentType).toMatch(/^text\/event-stream/);
      expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(result.writeStatus).toBe(200);
      expect(result.events).toContainEqual(expect.objectContaining({ elementId: SENSOR, value: 77.25 }));
      expect(consoleErrors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("cannot read /metrics or the health probes: they are not opened to other origins", async () => {
    const { page, close } = await browser.newPage();
    try {
      await page.goto(`${allowedPage.origin}/`);
      const outcomes = await page.evaluate(
        async ({ api, viewer }) => {
          const out: Record<string, string> = {};
          for (const path of ["/metrics", "/health/live", "/health/ready", "/docs/json"]) {
            try {
              const res = await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${viewer}` } });
              out[path] = `read ${res.status}`;
            } catch (err) {
              out[path] = (err as Error).name;
            }
          }
          return out;
        },
        { api: server.url, viewer: keys.viewer.token },
      );
      expect(outcomes).toEqual({
        "/metrics": "TypeError",
        "/health/live": "TypeError",
        "/health/ready": "TypeError",
        "/docs/json": "TypeError",
      });
    } finally {
      await close();
    }
  });
});

describe("a browser page on an origin I3XD_CORS_ORIGINS does not list", () => {
  it("is blocked by the browser, and both kinds of attempt are counted", async () => {
    const before = await corsRejections(server.url, bearer(keys.viewer));
    const { page, consoleErrors, close } = await browser.newPage();
    try {
      await page.goto(`${otherPage.origin}/`);
      const outcomes = await page.evaluate(
        async ({ api, viewer }) => {
          const attempt = async (init: RequestInit, path: string) => {
            try {
              const res = await fetch(`${api}${path}`, init);
              return `read ${res.status}`;
            } catch (err) {
              return (err as Error).name;
            }
          };
          return {
            // An Authorization header needs a preflight; the preflight gets no CORS headers.
            preflighted: await attempt({ headers: { authorization: `Bearer ${viewer}` } }, "/v1/namespaces"),
            // A plain GET goes out without one; its answer has no CORS headers and is withheld.
            simple: await attempt({}, "/v1/info"),
          };
        },
        { api: server.url, viewer: keys.viewer.token },
      );
      expect(outcomes).toEqual({ preflighted: "TypeError", simple: "TypeError" });
      expect(consoleErrors.length).toBeGreaterThanOrEqual(2);
      expect(consoleErrors.filter((e) => /blocked by CORS policy/.test(e)).length).toBeGreaterThanOrEqual(2);
    } finally {
      await close();
    }
    const after = await corsRejections(server.url, bearer(keys.viewer));
    expect(after.preflight - before.preflight).toBe(1);
    expect(after.request - before.request).toBe(1);
  });
});
