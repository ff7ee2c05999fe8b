// biome-ignore-all lint/suspicious/noExplicitAny: request and response bodies are arbitrary JSON
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { brotliDecompressSync, gunzipSync, gzipSync, inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_VALUE_IDS, seededRandom } from "../../src/demo/plant-physics.js";
import { postJson } from "../helpers/http.js";
import { makeTempDir } from "../helpers/server.js";
import { killChildren, serveChild } from "./child.js";

// A bounded, deterministic fuzz run against a real `i3xd serve` child process: many malformed and hostile
// requests across every endpoint. The server must answer each with a 4xx/2xx (never 5xx), every error in
// the failure envelope, stay up and healthy, and leave the stored data exactly as it was.

const SEED = 0x13d_2026;
const HTTP_CASES = 10_500;
const RAW_CASES = 400;
const CONCURRENCY = 24;
const BODY_LIMIT = 64 * 1024;

const temp = makeTempDir("i3xd-fuzz-");
let server: Awaited<ReturnType<typeof serveChild>>;

afterAll(async () => {
  if (server && server.child.exitCode === null) {
    server.child.kill("SIGTERM");
    await server.exited;
  }
  killChildren();
  temp.remove();
});

// ---- deterministic randomness --------------------------------------------------------------------------

const rng = seededRandom(SEED);
const int = (n: number) => Math.floor(rng() * n);
const pick = <T>(list: readonly T[]): T => list[int(list.length)];
const chance = (p: number) => rng() < p;

// ---- the corpus ----------------------------------------------------------------------------------------

const REAL_IDS = DEMO_VALUE_IDS;
const TYPE_IDS = ["pump-type", "tank-type", "UnknownType", "HasParent", "HasChildren", "HasComponent"];

const HOSTILE_STRINGS = [
  "",
  " ",
  " pump-101",
  "pump-101 ",
  "PUMP-101",
  "\u0000",
  "pump-101\u0000",
  "\u0007\u0008\u001b[31m",
  "\r\nX-Injected: 1",
  "line\nbreak",
  "../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
  "/v1/../v1/info",
  "pump-101/../tank-201",
  "\ud800",
  "\udfff\ud800",
  "😀".repeat(40),
  "\u202egnp.exe",
  "\ufeffpump-101",
  "ｐｕｍｐ－１０１",
  "'; DROP TABLE objects; --",
  '" OR 1=1 --',
  "%00",
  "{{7*7}}",
  ["$", "{jndi:ldap://x/a}"].join(""),
  "<script>alert(1)</script>",
  "__proto__",
  "constructor",
  "prototype",
  "hasOwnProperty",
  "toString",
  "x".repeat(5000),
  "a".repeat(300),
  "NaN",
  "null",
  "undefined",
  "true",
  "-1",
  "1e309",
  "\\",
  "\\u0000",
  "\t",
  "\u007f",
  "*",
  "%",
  "?root=true",
  "#frag",
  "i3xd_000000000000_secret",
];

/** JSON text that cannot be built with JSON.stringify (or should not be, for size). */
class Raw {
  constructor(
    readonly text: string,
    readonly kind: string,
  ) {}
}

const deepArray = (n: number) => new Raw(`${"[".repeat(n)}${"]".repeat(n)}`, "array");
const deepObject = (n: number) => new Raw(`${'{"a":'.repeat(n)}1${"}".repeat(n)}`, "object");

function weirdValue(): unknown {
  switch (int(24)) {
    case 0:
      return null;
    case 1:
      return pick([true, false]);
    case 2:
      return pick([0, -0, -1, 1.5, 2 ** 53 + 1, -(2 ** 63), 2 ** 64]);
    case 3:
      return new Raw(
        pick(["1e309", "-1e309", "1e-400", "123456789012345678901234567890", "-0.0e+0"]),
        "number",
      );
    case 4:
      return pick(HOSTILE_STRINGS);
    case 5:
      return [];
    case 6:
      return {};
    case 7:
      return deepArray(pick([100, 1000, 5000, 10_000]));
    case 8:
      return deepObject(pick([100, 1000, 5000]));
    case 9:
      return new Raw('{"__proto__":{"polluted":true}}', "object");
    case 10:
      return new Raw('{"constructor":{"prototype":{"polluted":true}}}', "object");
    case 11:
      return Array.from({ length: int(50) }, () => pick(HOSTILE_STRINGS));
    case 12:
      return { value: pick(HOSTILE_STRINGS), quality: "Good" };
    case 13:
      return new Raw(JSON.stringify(pick(HOSTILE_STRINGS)).replace(/^"/, '"\\ud800'), "string");
    case 14:
      return new Raw('"\\u0000\\u001f\\ud83d"', "string");
    case 15:
      return pick(REAL_IDS);
    case 16:
      return pick(["Good", "Bad", "GoodNoData", "Uncertain", "good", "Good ", ""]);
    case 17:
      return pick([
        "2026-01-01T00:00:00Z",
        "2026-13-45T99:99:99Z",
        "0000-00-00T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
      ]);
    case 18:
      return pick([
        "2026-01-01T00:00:00+02:00",
        "yesterday",
        "1700000000",
        "2026-01-01",
        "-271821-04-20T00:00:00Z",
      ]);
    case 19:
      return pick([Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, 1e21, 4294967296]);
    case 20:
      return Array.from({ length: 2000 }, (_, i) => i);
    case 21:
      return { [pick(HOSTILE_STRINGS)]: pick(HOSTILE_STRINGS) };
    case 22:
      return new Raw('{"a":1,"a":2,"a":{}}', "object");
    default:
      return pick([-1, 0, 1, 2, 3, 99, 1001]);
  }
}

function ids(): unknown {
  switch (int(8)) {
    case 0:
      return weirdValue();
    case 1:
      return [];
    case 2:
      return Array.from({ length: 1001 + int(50) }, () => pick(REAL_IDS));
    case 3:
      return Array.from({ length: 1 + int(5) }, () => weirdValue());
    case 4:
      return Array.from({ length: 1 + int(20) }, () => pick([...REAL_IDS, ...TYPE_IDS]));
    default:
      return Array.from({ length: 1 + int(8) }, () => (chance(0.5) ? pick(HOSTILE_STRINGS) : pick(REAL_IDS)));
  }
}

/** Serializes, emitting Raw fragments as they are. */
function toText(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return `[${v.map(toText).join(",")}]`;
  if (v !== null && typeof v === "object") {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${toText(x)}`)
      .join(",")}}`;
  }
  return v === undefined ? "null" : JSON.stringify(v);
}

const kindOf = (v: unknown) =>
  v instanceof Raw ? v.kind : v === null ? "null" : Array.isArray(v) ? "array" : typeof v;

/** Element id → the JSON kind its type's schema accepts (filled from the server at start). */
const valueKind = new Map<string, string>();

/**
 * Writes in the corpus must all be rejected: an update that names a real element keeps that element only
 * when its value cannot match the element's type (or is missing); otherwise it aims at a missing element.
 */
function guardWrite(update: any): void {
  if (update === null || typeof update !== "object" || Array.isArray(update)) return;
  if (typeof update.elementId !== "string" || !valueKind.has(update.elementId)) return;
  const vqt = update.value;
  if (vqt === null || typeof vqt !== "object" || Array.isArray(vqt) || vqt instanceof Raw) return;
  if (!("value" in vqt)) return;
  const k = kindOf(vqt.value);
  const accepted = valueKind.get(update.elementId);
  if (k === "null" || accepted === "any" || k === accepted || (accepted === "number" && k === "number")) {
    update.elementId = `fuzz-missing-${int(1000)}`;
  }
}

function vqtLike(): unknown {
  if (chance(0.15)) return weirdValue();
  const vqt: Record<string, unknown> = { value: weirdValue() };
  if (chance(0.7)) vqt.quality = chance(0.5) ? "Good" : weirdValue();
  if (chance(0.7)) vqt.timestamp = chance(0.5) ? "2030-01-01T00:00:00Z" : weirdValue();
  if (chance(0.1)) delete vqt.value;
  return vqt;
}

function updates(): unknown {
  if (chance(0.1)) return weirdValue();
  if (chance(0.03)) return Array.from({ length: 1001 }, () => ({ elementId: "nope", value: { value: 1 } }));
  return Array.from({ length: 1 + int(6) }, () => {
    if (chance(0.08)) return weirdValue();
    const u: Record<string, unknown> = {
      elementId: chance(0.6) ? pick(REAL_IDS) : chance(0.5) ? pick(HOSTILE_STRINGS) : weirdValue(),
      value: vqtLike(),
    };
    if (chance(0.05)) delete u.elementId;
    guardWrite(u);
    return u;
  });
}

const clientId = () => (chance(0.7) ? "fuzz-client" : weirdValue());
const subId = () => (chance(0.7) ? pick(["nope", "sub-0", "x".repeat(300)]) : weirdValue());
const time = () =>
  chance(0.6) ? pick(["2026-11-28T00:00:00Z", "2030-01-01T00:00:00.123456Z"]) : weirdValue();

type Template = { method: string; path: string; body?: () => Record<string, unknown> };

const POSTS: Template[] = [
  { method: "POST", path: "/v1/objecttypes/query", body: () => ({ elementIds: ids() }) },
  { method: "POST", path: "/v1/relationshiptypes/query", body: () => ({ elementIds: ids() }) },
  {
    method: "POST",
    path: "/v1/objects/list",
    body: () => ({ elementIds: ids(), includeMetadata: weirdValue() }),
  },
  {
    method: "POST",
    path: "/v1/objects/related",
    body: () => ({
      elementIds: ids(),
      relationshipType: chance(0.5) ? pick(TYPE_IDS) : weirdValue(),
      includeMetadata: weirdValue(),
    }),
  },
  { method: "POST", path: "/v1/objects/value", body: () => ({ elementIds: ids(), maxDepth: weirdValue() }) },
  {
    method: "POST",
    path: "/v1/objects/history",
    body: () => ({ elementIds: ids(), startTime: time(), endTime: time(), maxDepth: weirdValue() }),
  },
  { method: "PUT", path: "/v1/objects/value", body: () => ({ updates: updates() }) },
  { method: "PUT", path: "/v1/objects/history", body: () => ({ updates: updates() }) },
  {
    method: "POST",
    path: "/v1/subscriptions",
    body: () => ({ clientId: clientId(), displayName: weirdValue() }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/list",
    body: () => ({ clientId: clientId(), subscriptionIds: chance(0.5) ? [subId()] : weirdValue() }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/delete",
    body: () => ({ clientId: clientId(), subscriptionIds: chance(0.5) ? [subId()] : weirdValue() }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/register",
    body: () => ({
      clientId: clientId(),
      subscriptionId: subId(),
      elementIds: ids(),
      maxDepth: weirdValue(),
    }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/unregister",
    body: () => ({ clientId: clientId(), subscriptionId: subId(), elementIds: ids() }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/sync",
    body: () => ({ clientId: clientId(), subscriptionId: subId(), lastSequenceNumber: weirdValue() }),
  },
  {
    method: "POST",
    path: "/v1/subscriptions/stream",
    body: () => ({ clientId: clientId(), subscriptionId: subId() }),
  },
];

const GET_PATHS = [
  "/v1/info",
  "/v1/namespaces",
  "/v1/objecttypes",
  "/v1/relationshiptypes",
  "/v1/objects",
  "/v1/openapi.json",
  "/health/live",
  "/health/ready",
  "/metrics",
  "/docs/json",
];

const enc = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return "%ED%A0%80"; // a lone surrogate, as the raw bytes a client could send
  }
};

function query(): string {
  const params: string[] = [];
  const names = ["namespaceUri", "typeElementId", "includeMetadata", "root", "__proto__", "constructor", "x"];
  for (let i = int(4); i > 0; i--) {
    const name = pick(names);
    const value = chance(0.5)
      ? pick(["true", "false", "1", "", "TRUE"])
      : String(toText(weirdValue())).slice(0, 300);
    params.push(`${chance(0.1) ? `${name}[a]` : name}=${enc(value)}`);
  }
  return params.length > 0 ? `?${params.join("&")}` : "";
}

const TRAVERSAL_PATHS = [
  "/v1/../v1/info",
  "/v1/%2e%2e/%2e%2e/etc/passwd",
  "/v1/objects/..%2f..%2fetc%2fpasswd",
  "/../../../../etc/passwd",
  "//v1//objects",
  "/v1/objects/",
  "/v1/objects%00",
  "/v1/%ff%fe",
  "/V1/INFO",
  "/v1/info/",
  "/v1/objects;jsessionid=1",
  "/docs/static/../../../../package.json",
  "/docs/static/%2e%2e/%2e%2e/package.json",
  "/docs/static/..%5c..%5cpackage.json",
  "/metrics/../v1/objects",
  "/health/../metrics",
  `/v1/${"a/".repeat(400)}`,
  `/v1/objects/${"%41".repeat(2000)}`,
  "/v1/_test/fault",
  "/v1/subscriptions/stream/..",
];

const CONTENT_TYPES = [
  "text/plain",
  "application/xml",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "application/json; charset=utf-16",
  "application/jsonx",
  "application/json, text/plain",
  "application/vnd.api+json",
  "*/*",
  "",
  "application/json;;;",
  "APPLICATION/JSON",
];

function invalidJson(valid: string): string {
  switch (int(14)) {
    case 0:
      return valid.slice(0, int(valid.length));
    case 1:
      return `${valid},`;
    case 2:
      return valid.replace(/"/g, "'");
    case 3:
      return `${valid}${valid}`;
    case 4:
      return `\ufeff${valid}`;
    case 5:
      return `/* c */${valid}`;
    case 6:
      return valid.replace(/:/, ":NaN,");
    case 7:
      return "";
    case 8:
      return "null";
    case 9:
      return pick(['"string"', "42", "[1,2,3]", "true", "[]"]);
    case 10:
      return `{"elementIds":["${"\\".repeat(int(5))}`;
    case 11:
      return valid.replace(/\{/, '{"__proto__":{"polluted":true},');
    case 12:
      return valid.replace(/\{/, '{"constructor":{"prototype":{"polluted":true}},');
    default:
      return Buffer.from(Buffer.from(valid).map((b) => (chance(0.02) ? int(256) : b))).toString("latin1");
  }
}

interface Case {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
  label: string;
}

function httpCase(n: number): Case {
  const headers: Record<string, string> = {};
  if (chance(0.3))
    headers["accept-encoding"] = pick(["gzip", "deflate", "br", "gzip;q=0, identity;q=0", "*;q=0", "x"]);
  if (chance(0.2)) headers.accept = pick(["text/event-stream", "application/xml", "*/*", "garbage/", ""]);
  if (chance(0.05)) headers["x-request-id"] = pick(HOSTILE_STRINGS.filter((s) => /^[\x20-\x7e]*$/.test(s)));
  if (chance(0.05))
    headers.authorization = pick([
      "Bearer",
      "Bearer ",
      "Basic x",
      "Bearer i3xd_zz_zz",
      "Bearer \u00ff",
    ]).replace(/[^\x20-\x7e]/g, "?");

  if (n % 7 === 0) {
    // GET-like requests: query strings, traversal, methods routes do not have.
    const method = pick(["GET", "GET", "GET", "HEAD", "DELETE", "PATCH", "OPTIONS", "POST", "PUT", "TRACE"]);
    const base = chance(0.6) ? pick(GET_PATHS) : pick([...TRAVERSAL_PATHS, ...POSTS.map((p) => p.path)]);
    const c: Case = {
      method,
      path: `${base}${chance(0.7) ? query() : ""}`,
      headers,
      label: `${method} ${base}`,
    };
    if ((method === "POST" || method === "PUT" || method === "PATCH") && chance(0.7)) {
      headers["content-type"] = "application/json";
      c.body = toText(weirdValue());
    }
    return c;
  }

  const t = pick(POSTS);
  let text = toText(chance(0.92) ? t.body?.() : weirdValue());
  let contentType = "application/json";
  const mutation = int(20);
  if (mutation < 3) text = invalidJson(text);
  else if (mutation === 3) contentType = pick(CONTENT_TYPES);
  else if (mutation === 4 && chance(0.3)) text = `{"elementIds":["${"x".repeat(BODY_LIMIT + int(4096))}"]}`;
  else if (mutation === 5) text = text.replace(/"(\w+)":/, '"$1":null,"$1":');
  const c: Case = { method: t.method, path: t.path, headers, body: text, label: `${t.method} ${t.path}` };
  if (contentType !== "") headers["content-type"] = contentType;
  if (mutation === 6) {
    headers["content-encoding"] = "gzip";
    c.body = chance(0.5) ? gzipSync(Buffer.from(text)) : Buffer.from(text);
  } else if (mutation === 7 && chance(0.2)) {
    // A compression bomb: a small request that inflates past the body limit.
    headers["content-encoding"] = "gzip";
    c.body = gzipSync(Buffer.alloc(BODY_LIMIT * 8, 0x20));
  }
  return c;
}

/** Byte-level abuse that an HTTP client library would refuse to send. */
function rawCase(): string {
  const path = pick([...GET_PATHS, ...TRAVERSAL_PATHS, ...POSTS.map((p) => p.path)]);
  const body = toText(pick(POSTS).body?.());
  switch (int(12)) {
    case 0:
      return `GET ${path}\u0000 HTTP/1.1\r\nHost: x\r\n\r\n`;
    case 1:
      return `${pick(["GET", "FOO", "G E T", ""])} ${pick(["/v1/info", "*", "http://evil/v1/info", "/v1/ünïcode", "v1/info"])} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    case 2:
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
    case 3:
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n${body}`;
    case 4:
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZZ\r\n${body}\r\n0\r\n\r\n`;
    case 5:
      return `GET ${path} HTTP/1.1\r\nHost: x\r\nBad Header: value\r\n\r\n`;
    case 6:
      return `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Val: a\u0000b\r\n\r\n`;
    case 7:
      return `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`;
    case 8:
      return `GET /v1/info HTTP/9.9\r\nHost: x\r\n\r\n`;
    case 9:
      return `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n${body}`;
    case 10:
      return `${Array.from({ length: 40 }, () => String.fromCharCode(int(256))).join("")}\r\n\r\n`;
    default:
      return `GET ${path} HTTP/1.1\r\n${Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}`).join("\r\n")}\r\nConnection: close\r\n\r\n`;
  }
}

// ---- checking answers ----------------------------------------------------------------------------------

interface Outcome {
  label: string;
  status: number;
  problem?: string;
}

function decode(buf: Buffer, encoding: string | undefined): Buffer {
  if (encoding === "gzip") return gunzipSync(buf);
  if (encoding === "deflate") return inflateSync(buf);
  if (encoding === "br") return brotliDecompressSync(buf);
  return buf;
}

function checkAnswer(
  c: { method: string; path: string },
  status: number,
  contentType: string,
  text: string,
): string | undefined {
  if (status >= 500) return `status ${status}: ${text.slice(0, 300)}`;
  if (status < 200) return `status ${status}`;
  if (c.method === "HEAD" || status === 204 || (status >= 300 && status < 400)) return undefined;
  const free =
    c.path.startsWith("/metrics") || c.path.startsWith("/docs") || c.path.startsWith("/v1/openapi.json");
  if (status < 300 && free && !contentType.includes("json")) return undefined;
  if (contentType.includes("event-stream"))
    return status === 200 ? undefined : "event stream with an error status";
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return `not JSON (status ${status}, ${contentType}): ${text.slice(0, 200)}`;
  }
  if (status >= 400) {
    const d = body?.responseDetail;
    if (
      body?.success !== false ||
      typeof d?.title !== "string" ||
      d?.status !== status ||
      typeof d?.detail !== "string" ||
      Object.keys(body).length !== 2
    ) {
      return `not a failure envelope (status ${status}): ${text.slice(0, 300)}`;
    }
    return undefined;
  }
  if (!free && typeof body?.success !== "boolean") return `2xx without success flag: ${text.slice(0, 200)}`;
  return undefined;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(base: URL, c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...c.headers };
    if (c.body !== undefined) headers["content-length"] = Buffer.byteLength(c.body);
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: base.hostname,
        port: base.port,
        method: c.method,
        path: c.path,
        headers,
        agent,
      });
    } catch (err) {
      // The client library itself refused the request; nothing reached the server.
      return resolve({ label: c.label, status: 0, problem: `client refused: ${String(err)}` });
    }
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ label: c.label, status: 0, problem: "no answer within 20 s" });
    }, 20_000);
    req.on("response", (res) => {
      const contentType = String(res.headers["content-type"] ?? "");
      if (contentType.includes("event-stream")) {
        clearTimeout(timer);
        req.destroy();
        return resolve({ label: c.label, status: res.statusCode ?? 0 });
      }
      const chunks: Buffer[] = [];
      if (c.method === "HEAD") {
        res.resume();
        res.on("end", () => {
          clearTimeout(timer);
          const status = res.statusCode ?? 0;
          resolve({ label: c.label, status, problem: status >= 500 ? `status ${status}` : undefined });
        });
        return;
      }
      res.on("data", (b: Buffer) => chunks.push(b));
      res.on("end", () => {
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        let text: string;
        try {
          text = decode(
            Buffer.concat(chunks),
            res.headers["content-encoding"] as string | undefined,
          ).toString("utf8");
        } catch (err) {
          return resolve({ label: c.label, status, problem: `undecodable body: ${String(err)}` });
        }
        resolve({ label: c.label, status, problem: checkAnswer(c, status, contentType, text) });
      });
      res.on("error", () => {
        clearTimeout(timer);
        resolve({ label: c.label, status: 0, problem: "response cut off" });
      });
    });
    req.on("error", (err) => {
      clearTimeout(timer);
      // A server may close a connection after answering an unreadable request; only the bodies the
      // server refused to read (oversized, undecodable) may end that way without an answer.
      const tolerated = c.body !== undefined && Buffer.byteLength(c.body) >= BODY_LIMIT;
      resolve({
        label: c.label,
        status: 0,
        problem: tolerated ? undefined : `connection error: ${err.message}`,
      });
    });
    if (c.body !== undefined) req.write(c.body);
    req.end();
  });
}

function sendRaw(base: URL, payload: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(base.port), base.hostname);
    let data = Buffer.alloc(0);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const text = data.toString("utf8");
      const label = `raw ${JSON.stringify(payload.slice(0, 40))}`;
      if (text === "") return resolve({ label, status: 0 }); // closed without an answer: allowed for garbage
      const cut = text.indexOf("\r\n\r\n");
      const head = cut < 0 ? text : text.slice(0, cut);
      const status = Number(head.split(" ")[1]);
      const type = /content-type: *([^\r\n]*)/i.exec(head)?.[1] ?? "";
      // Only the first answer is judged; a keep-alive connection may carry more.
      let body = cut < 0 ? "" : text.slice(cut + 4);
      const length = /content-length: *(\d+)/i.exec(head);
      if (length) body = Buffer.from(body).subarray(0, Number(length[1])).toString("utf8");
      else if (/transfer-encoding: *chunked/i.test(head)) body = dechunk(body);
      resolve({ label, status, problem: checkAnswer({ method: "GET", path: "/raw" }, status, type, body) });
    };
    const timer = setTimeout(finish, 3000);
    socket.on("data", (b: Buffer) => {
      data = Buffer.concat([data, b]);
    });
    socket.on("error", () => {});
    socket.on("close", finish);
    socket.write(payload, "latin1");
    socket.end();
  });
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const nl = rest.indexOf("\r\n");
    if (nl < 0) return out;
    const size = Number.parseInt(rest.slice(0, nl), 16);
    if (!(size > 0)) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
}

async function runPool<T>(
  items: T[],
  worker: (item: T) => Promise<Outcome>,
  width: number,
): Promise<Outcome[]> {
  const out: Outcome[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await worker(items[i]);
      }
    }),
  );
  return out;
}

// ---- the stored data, before and after -----------------------------------------------------------------

async function snapshot(url: string): Promise<unknown> {
  const get = async (p: string) => (await fetch(`${url}${p}`)).json();
  const values = await postJson(url, "/v1/objects/value", { elementIds: REAL_IDS, maxDepth: 0 });
  const history = await postJson(url, "/v1/objects/history", {
    elementIds: ["sensor-001", "pump-101-flow", "tank-201", "plc-01"],
    startTime: "2000-01-01T00:00:00Z",
    endTime: "2100-01-01T00:00:00Z",
  });
  return {
    namespaces: await get("/v1/namespaces"),
    types: await get("/v1/objecttypes"),
    relationshipTypes: await get("/v1/relationshiptypes"),
    objects: await get("/v1/objects?includeMetadata=true"),
    values: values.body,
    history: history.body,
  };
}

// ---- the run -------------------------------------------------------------------------------------------

let before: unknown;

beforeAll(async () => {
  server = await serveChild({
    I3XD_DATA_DIR: path.join(temp.dir, "data"),
    I3XD_DEMO: "true",
    I3XD_BODY_LIMIT: String(BODY_LIMIT),
    LOG_LEVEL: "warn",
  });
  const objects = (await (await fetch(`${server.url}/v1/objects`)).json()) as any;
  const types = (await (await fetch(`${server.url}/v1/objecttypes`)).json()) as any;
  const schemaType = new Map<string, unknown>(types.result.map((t: any) => [t.elementId, t.schema?.type]));
  for (const o of objects.result) {
    const t = schemaType.get(o.typeElementId);
    valueKind.set(
      o.elementId,
      t === "integer" || t === "number" ? "number" : typeof t === "string" ? t : "any",
    );
  }
  expect(valueKind.size).toBeGreaterThanOrEqual(REAL_IDS.length);
  before = await snapshot(server.url);
}, 120_000);

describe("fuzzing every endpoint", () => {
  it(`answers ${HTTP_CASES + RAW_CASES} malformed and hostile requests without a 5xx, each error in the envelope`, async () => {
    const base = new URL(server.url);
    const cases = Array.from({ length: HTTP_CASES }, (_, i) => httpCase(i));
    const raws = Array.from({ length: RAW_CASES }, () => rawCase());
    const outcomes = [
      ...(await runPool(cases, (c) => send(base, c), CONCURRENCY)),
      ...(await runPool(raws, (p) => sendRaw(base, p), 8)),
    ];
    agent.destroy();

    const answered = outcomes.filter((o) => o.status > 0).length;
    const problems = outcomes.filter((o) => o.problem !== undefined);
    const byStatus = new Map<number, number>();
    for (const o of outcomes) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    const summary = [...byStatus.entries()].sort((a, b) => a[0] - b[0]);
    expect(
      problems.slice(0, 15).map((p) => `${p.label}: ${p.problem}`),
      `status counts ${JSON.stringify(summary)}`,
    ).toEqual([]);
    expect(answered).toBeGreaterThanOrEqual(10_000);
    expect(outcomes.some((o) => o.status >= 500)).toBe(false);
  }, 120_000);

  it("is still up and healthy, logged no server error, and the stored data is unchanged", async () => {
    expect(server.child.exitCode).toBeNull();
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${server.url}/health/ready`)).status).toBe(200);
    const errors = server
      .stdout()
      .split("\n")
      .filter((l) => /"level":"(ERROR|CRITICAL)"/.test(l));
    expect(errors.slice(0, 5)).toEqual([]);
    expect(await snapshot(server.url)).toEqual(before);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.stderr()).not.toMatch(/Uncaught|FATAL|RangeError|TypeError/);
  }, 60_000);
});
