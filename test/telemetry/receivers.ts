import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { gunzipSync, inflateSync } from "node:zlib";

/**
 * Loopback stand-ins for the telemetry back-ends (an OTLP/HTTP collector, Sentry, Loki, Logstash). They
 * speak the real wire protocols, so the server under test runs its real SDKs and transports against them.
 */

export interface Receiver {
  url: string;
  close(): Promise<void>;
}

/** Polls until `get` returns something truthy, or fails after `timeoutMs` naming `what`. */
export async function waitFor<T>(
  what: string,
  get: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Recorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

async function httpReceiver(
  respond: (req: Recorded, res: http.ServerResponse) => void = (_req, res) => res.end(),
): Promise<Receiver & { requests: Recorded[]; server: http.Server }> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      const encoding = req.headers["content-encoding"];
      if (encoding === "gzip") body = gunzipSync(body);
      else if (encoding === "deflate") body = inflateSync(body);
      const recorded = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body };
      requests.push(recorded);
      respond(recorded, res);
    });
  });
  server.keepAliveTimeout = 500;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    server,
    close: () => closeServer(server),
  };
}

function closeServer(server: http.Server | net.Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

// ---------------------------------------------------------------------------------------------- OTLP

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** Nanoseconds since the epoch. */
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, unknown>;
  statusCode: number;
  resource: Record<string, unknown>;
}

export async function startOtlpReceiver() {
  const base = await httpReceiver((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  const spans = (): ReceivedSpan[] =>
    base.requests
      .filter((r) => r.path === "/v1/traces")
      .flatMap((r) =>
        String(r.headers["content-type"]).includes("json") ? fromOtlpJson(r.body) : fromOtlpProtobuf(r.body),
      );
  return { ...base, spans, contentTypes: () => base.requests.map((r) => String(r.headers["content-type"])) };
}

// biome-ignore lint/suspicious/noExplicitAny: OTLP/JSON documents are checked field by field below
type Json = any;

function fromOtlpJson(body: Buffer): ReceivedSpan[] {
  const doc: Json = JSON.parse(body.toString("utf8"));
  const out: ReceivedSpan[] = [];
  for (const rs of doc.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? "",
          name: s.name,
          kind: s.kind,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          attributes: jsonAttributes(s.attributes),
          statusCode: s.status?.code ?? 0,
          resource,
        });
      }
    }
  }
  return out;
}

function jsonAttributes(list: Json[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = jsonValue(kv.value);
  return out;
}

function jsonValue(v: Json): unknown {
  if (v === undefined || v === null) return undefined;
  if ("stringValue" in v) return v.stringValue;
  if ("boolValue" in v) return v.boolValue;
  if ("intValue" in v) return Number(v.intValue);
  if ("doubleValue" in v) return v.doubleValue;
  if ("arrayValue" in v) return (v.arrayValue.values ?? []).map(jsonValue);
  return undefined;
}

/** Just enough protobuf to read spans out of an OTLP ExportTraceServiceRequest. */
function fromOtlpProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of fields(body).filter((f) => f.no === 1)) {
    const rsFields = fields(rs.bytes);
    const resourceMsg = rsFields.find((f) => f.no === 1);
    const resource = resourceMsg ? pbAttributes(fields(resourceMsg.bytes).filter((f) => f.no === 1)) : {};
    for (const ss of rsFields.filter((f) => f.no === 2)) {
      for (const sp of fields(ss.bytes).filter((f) => f.no === 2)) {
        const f = fields(sp.bytes);
        const one = (no: number) => f.find((x) => x.no === no);
        const status = one(15);
        const code = status ? fields(status.bytes).find((x) => x.no === 3) : undefined;
        out.push({
          traceId: one(1)?.bytes.toString("hex") ?? "",
          spanId: one(2)?.bytes.toString("hex") ?? "",
          parentSpanId: one(4)?.bytes.toString("hex") ?? "",
          name: one(5)?.bytes.toString("utf8") ?? "",
          kind: Number(one(6)?.varint ?? 0),
          startTimeUnixNano: one(7)?.bytes.readBigUInt64LE(0) ?? 0n,
          endTimeUnixNano: one(8)?.bytes.readBigUInt64LE(0) ?? 0n,
          attributes: pbAttributes(f.filter((x) => x.no === 9)),
          statusCode: Number(code?.varint ?? 0),
          resource,
        });
      }
    }
  }
  return out;
}

function pbAttributes(kvs: Field[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs) {
    const f = fields(kv.bytes);
    const key = f.find((x) => x.no === 1)?.bytes.toString("utf8") ?? "";
    const value = f.find((x) => x.no === 2);
    out[key] = value ? pbValue(value.bytes) : undefined;
  }
  return out;
}

function pbValue(buf: Buffer): unknown {
  const f = fields(buf)[0];
  if (!f) return undefined;
  switch (f.no) {
    case 1:
      return f.bytes.toString("utf8");
    case 2:
      return f.varint === 1n;
    case 3:
      return Number(BigInt.asIntN(64, f.varint ?? 0n));
    case 4:
      return f.bytes.readDoubleLE(0);
    case 5:
      return fields(f.bytes)
        .filter((x) => x.no === 1)
        .map((x) => pbValue(x.bytes));
    default:
      return undefined;
  }
}

interface Field {
  no: number;
  varint?: bigint;
  bytes: Buffer;
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const no = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ no, varint: varint(), bytes: Buffer.alloc(0) });
    else if (wire === 1) {
      out.push({ no, bytes: buf.subarray(pos, pos + 8) });
      pos += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      out.push({ no, bytes: buf.subarray(pos, pos + len) });
      pos += len;
    } else if (wire === 5) {
      out.push({ no, bytes: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
  return out;
}

// -------------------------------------------------------------------------------------------- Sentry

export interface SentryItem {
  type: string;
  headers: Record<string, unknown>;
  payload: Json;
}

/** Receives Sentry envelopes (`POST /api/<project>/envelope/`); the DSN is `http://key@host:port/1`. */
export async function startSentryReceiver() {
  const base = await httpReceiver((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  const envelopes = () =>
    base.requests
      .filter((r) => /\/api\/\d+\/envelope\/?(\?|$)/.test(r.path))
      .map((r) => parseEnvelope(r.body));
  /** Error events (item type `event`), one entry per envelope item. */
  const events = () =>
    envelopes().flatMap((items) => items.filter((i) => i.type === "event").map((i) => i.payload));
  const dsn = `${base.url.replace("http://", "http://publickey@")}/1`;
  return { ...base, dsn, envelopes, events };
}

function parseEnvelope(body: Buffer): SentryItem[] {
  const text = body.toString("utf8");
  const lines = text.split("\n");
  const items: SentryItem[] = [];
  let i = 1;
  while (i < lines.length) {
    if (lines[i].trim() === "") {
      i++;
      continue;
    }
    const headers = JSON.parse(lines[i]);
    const raw = lines[i + 1] ?? "";
    let payload: Json = raw;
    try {
      payload = JSON.parse(raw);
    } catch {
      // attachments and the like are not JSON
    }
    items.push({ type: headers.type, headers, payload });
    i += 2;
  }
  return items;
}

// ---------------------------------------------------------------------------------------------- Loki

export interface LokiPush {
  headers: http.IncomingHttpHeaders;
  streams: { stream: Record<string, string>; values: [string, string][] }[];
}

export async function startLokiReceiver(status = 204) {
  const base = await httpReceiver((_req, res) => {
    res.writeHead(status);
    res.end();
  });
  const pushes = (): LokiPush[] =>
    base.requests
      .filter((r) => r.path === "/loki/api/v1/push")
      .map((r) => ({ headers: r.headers, ...JSON.parse(r.body.toString("utf8")) }));
  /** Every entry received, ordered by its timestamp (Loki's own order within a stream). */
  const entries = () =>
    pushes()
      .flatMap((p) =>
        p.streams.flatMap((s) => s.values.map(([ts, line]) => ({ ts, line, labels: s.stream }))),
      )
      .sort((a, b) => (BigInt(a.ts) < BigInt(b.ts) ? -1 : BigInt(a.ts) > BigInt(b.ts) ? 1 : 0));
  return { ...base, pushes, entries };
}

/** Accepts HTTP requests and never answers them: a Loki that hangs. */
export async function startHangingHttp(): Promise<Receiver & { requestCount(): number }> {
  let count = 0;
  const server = http.createServer(() => {
    count++;
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requestCount: () => count, close: () => closeServer(server) };
}

// ------------------------------------------------------------------------------------------ Logstash

/** A `tcp { codec => json_lines }` input: collects newline-delimited lines from every connection. */
export async function startLogstashReceiver() {
  const lines: string[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let carry = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      const text = carry + chunk;
      const parts = text.split("\n");
      carry = parts.pop() ?? "";
      for (const p of parts) if (p !== "") lines.push(p);
    });
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { host: "127.0.0.1", port, lines, connections: () => connections, close: () => closeServer(server) };
}

/** Accepts TCP connections and never reads from them: the socket's buffers fill, then stay full. */
export async function startBlackholeTcp() {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    host: "127.0.0.1",
    port,
    connections: () => sockets.length,
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

/** A port nothing listens on (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Every telemetry back-end stuck: OTLP, Sentry and Loki accept requests and never answer, Logstash accepts
 * connections and never reads. `env` points i3xd at all four.
 */
export async function startStuckBackends() {
  const [otlp, sentry, loki, logstash] = await Promise.all([
    startHangingHttp(),
    startHangingHttp(),
    startHangingHttp(),
    startBlackholeTcp(),
  ]);
  return {
    otlp,
    sentry,
    loki,
    logstash,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: "200",
      SENTRY_DSN: `${sentry.url.replace("http://", "http://publickey@")}/1`,
      LOKI_URL: loki.url,
      LOGSTASH_HOST: logstash.host,
      LOGSTASH_PORT: String(logstash.port),
    },
    close: () => Promise.all([otlp.close(), sentry.close(), loki.close(), logstash.close()]),
  };
}
