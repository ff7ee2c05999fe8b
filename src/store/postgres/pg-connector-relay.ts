import { randomUUID } from "node:crypto";
import type pg from "pg";
import { halfJitterDelayMs } from "../../domain/backoff.js";
import type { ConnectorRelay, ConnectorRelayHandlers } from "../../domain/connector-relay.js";
import type { HistoryReadItem, HistoryReadRange, HistoryReadResult } from "../../domain/history-read.js";
import type { WriteBackItem, WriteBackResult } from "../../domain/write-back.js";
import { getLogger } from "../../observability/logger.js";
import { PAYLOAD_MAX_BYTES } from "./pg-notify.js";
import { LazySession } from "./pg-session.js";

const log = getLogger("i3xd.connectors");

/** Its own channel: the change feed's listeners never see connector traffic. */
export const CONNECTOR_RELAY_CHANNEL = "i3xd_connector_relay";

/** Longest request (its JSON body, all parts together). */
const REQUEST_MAX_BYTES = 1024 * 1024;

/** Longest detail carried back per write-back item. */
const DETAIL_MAX = 200;

/** How long the parts of a request from another replica may take to arrive in full. */
const ASSEMBLY_TIMEOUT_MS = 30_000;

/** Most request bytes being assembled at once, all requests together: beyond it new requests are dropped. */
const ASSEMBLING_MAX_BYTES = 16 * 1024 * 1024;

/** `w`: write-back; `h`: history read-through. */
type RequestKind = "w" | "h";

/** One notification: part `n` (from 0) of `of` of a message's JSON body, `d`. */
interface Part {
  t: "req" | "res";
  id: string;
  n: number;
  of: number;
  d: string;
  /** Requests only: the asking replica, the connector and what is asked. */
  o?: string;
  c?: string;
  k?: RequestKind;
}

interface HistoryBody {
  items: readonly HistoryReadItem[];
  range: HistoryReadRange;
}

interface Assembly {
  parts: (string | undefined)[];
  received: number;
  bytes: number;
}

interface Waiting extends Assembly {
  /** Most bytes the answer may have. */
  cap: number;
  settle: (body: string | undefined) => void;
}

interface Incoming extends Assembly {
  connector: string;
  kind: RequestKind;
  timer: NodeJS.Timeout;
}

/**
 * What a replica may do only where the connector runs (write-back, history read-through), handed between
 * replicas over PostgreSQL NOTIFY on one dedicated LISTEN connection per process. The asking replica
 * publishes the request; the replica that runs the connector (the only one whose handlers answer) does the
 * work and publishes the answer. A message larger than one notification (8000 bytes) travels in parts,
 * all sent in one statement, so they are delivered together and in order; each is reassembled before use.
 * Both are bounded in bytes: a request by `REQUEST_MAX_BYTES`, an answer by what the request allows (a
 * history answer by the range's `maxBytes`, which the source's read honours). A lost connection reconnects
 * with backoff; requests waiting meanwhile time out.
 */
export class PgConnectorRelay implements ConnectorRelay {
  private readonly session: LazySession;
  private readonly origin = randomUUID();
  private readonly waiting = new Map<string, Waiting>();
  private readonly incoming = new Map<string, Incoming>();
  private incomingBytes = 0;
  private handlers: ConnectorRelayHandlers | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private attempts = 0;

  constructor(connectionString: string) {
    this.session = new LazySession({
      connectionString,
      applicationName: "i3xd-connector-relay",
      owner: "connector relay",
      listen: {
        channel: CONNECTOR_RELAY_CHANNEL,
        onNotification: (payload, from) => this.onNotification(from, payload),
      },
      onOpened: () => {
        this.attempts = 0;
      },
      onLost: (err) => {
        log.warn({ exception: err }, "Connector relay connection lost; reconnecting");
        this.scheduleReconnect();
      },
    });
  }

  /** Connects and LISTENs, so requests from other replicas are answered from start-up on. */
  async start(): Promise<void> {
    await this.session.get();
  }

  serve(handlers: ConnectorRelayHandlers): void {
    this.handlers = handlers;
  }

  async forward(
    connector: string,
    items: readonly WriteBackItem[],
    timeoutMs: number,
  ): Promise<WriteBackResult[]> {
    const refuse = (status: number, detail: string) =>
      items.map(() => ({ ok: false as const, status, detail }));
    const body = JSON.stringify(items);
    if (Buffer.byteLength(body) > REQUEST_MAX_BYTES) {
      return refuse(
        413,
        `connector "${connector}" runs on another replica, and this write-back is too large to hand over (at most ${REQUEST_MAX_BYTES} bytes of JSON per request); write fewer or smaller values per request, or send it to the replica that runs the connector`,
      );
    }
    const answer = await this.ask(connector, "w", body, writeAnswerCap(items.length), timeoutMs);
    if (!answer.ok) {
      return answer.reason === "unreachable"
        ? refuse(
            503,
            `connector "${connector}" runs on another replica, which cannot be reached now: ${answer.detail}`,
          )
        : refuse(
            503,
            `connector "${connector}" is not running on any replica that answered within ${timeoutMs} ms; retry later`,
          );
    }
    const results = parse(answer.body);
    if (!Array.isArray(results) || results.length !== items.length) {
      return refuse(
        502,
        `the replica running connector "${connector}" answered with the wrong number of results`,
      );
    }
    return results as WriteBackResult[];
  }

  async forwardHistory(
    connector: string,
    items: readonly HistoryReadItem[],
    range: HistoryReadRange,
    timeoutMs: number,
  ): Promise<HistoryReadResult[] | undefined> {
    const body = JSON.stringify({ items, range } satisfies HistoryBody);
    if (Buffer.byteLength(body) > REQUEST_MAX_BYTES) {
      log.warn({ connector, items: items.length }, "History read-through too large to hand over; skipped");
      return undefined;
    }
    const answer = await this.ask(connector, "h", body, historyAnswerCap(items.length, range), timeoutMs);
    if (!answer.ok) return undefined;
    const results = parse(answer.body);
    // null: the replica running the connector has nothing to add (its kind reads no history).
    if (!Array.isArray(results) || results.length !== items.length) return undefined;
    return results as HistoryReadResult[];
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const waiting of this.waiting.values()) waiting.settle(undefined);
    for (const request of this.incoming.values()) clearTimeout(request.timer);
    this.incoming.clear();
    await this.session.close();
  }

  /** Publishes a request and waits for its answer's body (at most `cap` bytes). */
  private async ask(
    connector: string,
    kind: RequestKind,
    body: string,
    cap: number,
    timeoutMs: number,
  ): Promise<
    { ok: true; body: string } | { ok: false; reason: "unreachable" | "unanswered"; detail?: string }
  > {
    let client: pg.Client;
    try {
      client = await this.session.get();
    } catch (err) {
      return { ok: false, reason: "unreachable", detail: (err as Error).message };
    }
    const id = randomUUID();
    const answered = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), timeoutMs);
      timer.unref();
      const settle = (answer: string | undefined) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(answer);
      };
      this.waiting.set(id, { parts: [], received: 0, bytes: 0, cap, settle });
    });
    try {
      await this.publish(client, { t: "req", id, o: this.origin, c: connector, k: kind }, body);
    } catch (err) {
      this.waiting.get(id)?.settle(undefined);
      return { ok: false, reason: "unreachable", detail: (err as Error).message };
    }
    const answer = await answered;
    return answer === undefined ? { ok: false, reason: "unanswered" } : { ok: true, body: answer };
  }

  /** Sends `body` in as many notifications as it needs, in one statement (one transaction). */
  private async publish(client: pg.Client, head: Omit<Part, "n" | "of" | "d">, body: string): Promise<void> {
    const pieces = splitForPayloads(head, body);
    const payloads = pieces.map((d, n) => JSON.stringify({ ...head, n, of: pieces.length, d }));
    await client.query(
      "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS x(p, i) ORDER BY i",
      [CONNECTOR_RELAY_CHANNEL, payloads],
    );
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const delayMs = halfJitterDelayMs(this.attempts, 100, 5000);
    this.attempts++;
    this.timer = setTimeout(() => {
      this.session.get().catch(() => this.scheduleReconnect());
    }, delayMs);
    this.timer.unref();
  }

  private onNotification(client: pg.Client, payload: string | undefined): void {
    const part = parsePart(payload);
    if (part === undefined) return;
    if (part.t === "res") {
      const waiting = this.waiting.get(part.id);
      if (waiting === undefined) return;
      if (!add(waiting, part, waiting.cap)) {
        log.warn(
          { bytes: waiting.bytes, cap: waiting.cap },
          "Answer from another replica too large; dropped",
        );
        waiting.settle(undefined);
        return;
      }
      if (waiting.received === part.of) waiting.settle(waiting.parts.join(""));
      return;
    }
    if (part.o === this.origin || part.c === undefined || part.k === undefined) return;
    if (this.handlers?.runs(part.c) !== true) return;
    let request = this.incoming.get(part.id);
    if (request === undefined) {
      if (this.incomingBytes + part.d.length > ASSEMBLING_MAX_BYTES) {
        log.warn({ connector: part.c }, "Too many requests from other replicas being assembled; one dropped");
        return;
      }
      const timer = setTimeout(() => this.forget(part.id), ASSEMBLY_TIMEOUT_MS);
      timer.unref();
      request = { parts: [], received: 0, bytes: 0, connector: part.c, kind: part.k, timer };
      this.incoming.set(part.id, request);
    }
    const before = request.bytes;
    const fits = add(request, part, REQUEST_MAX_BYTES);
    this.incomingBytes += request.bytes - before;
    if (!fits) {
      this.forget(part.id);
      return;
    }
    if (request.received < part.of) return;
    this.forget(part.id);
    this.answer(client, part.id, request.connector, request.kind, request.parts.join(""));
  }

  private forget(id: string): void {
    const request = this.incoming.get(id);
    if (request === undefined) return;
    clearTimeout(request.timer);
    this.incomingBytes -= request.bytes;
    this.incoming.delete(id);
  }

  private answer(client: pg.Client, id: string, connector: string, kind: RequestKind, body: string): void {
    const answering = kind === "w" ? this.answerWrite(connector, body) : this.answerHistory(connector, body);
    answering
      .then((text) => (text === undefined ? undefined : this.publish(client, { t: "res", id }, text)))
      .catch((err: unknown) =>
        log.warn({ exception: err, connector }, "Could not answer a request from another replica"),
      );
  }

  private async answerWrite(connector: string, body: string): Promise<string | undefined> {
    const items = parse(body);
    if (!Array.isArray(items)) return undefined;
    const handling = this.handlers?.write(connector, items as WriteBackItem[]);
    if (handling === undefined) return undefined;
    const results = await handling.catch((err: unknown) =>
      items.map(() => ({
        ok: false as const,
        status: 502,
        detail: `write-back failed: ${(err as Error).message}`,
      })),
    );
    return JSON.stringify(results.map((r) => (r.ok ? r : { ...r, detail: r.detail.slice(0, DETAIL_MAX) })));
  }

  private async answerHistory(connector: string, body: string): Promise<string | undefined> {
    const request = parse(body) as Partial<HistoryBody> | undefined;
    const items = request?.items;
    const range = request?.range;
    if (!Array.isArray(items) || !validRange(range)) return undefined;
    const handling = this.handlers?.readHistory(connector, items, range);
    if (handling === undefined) return "null";
    const results = await handling.catch((err: unknown) =>
      items.map(() => ({ ok: false as const, detail: `history read failed: ${(err as Error).message}` })),
    );
    const text = JSON.stringify(results);
    if (Buffer.byteLength(text) <= historyAnswerCap(items.length, range)) return text;
    // The source's read did not honour maxBytes: the asker would drop the answer anyway.
    return JSON.stringify(
      items.map(() => ({ ok: false, detail: "the source's answer exceeded the read-through byte limit" })),
    );
  }
}

/** A write-back answer: one result with a shortened detail per item. */
function writeAnswerCap(items: number): number {
  return 1024 + items * (DETAIL_MAX * 6 + 128);
}

/** A history answer: the points' bytes, and per item its envelope or a failure's detail. */
function historyAnswerCap(items: number, range: HistoryReadRange): number {
  return range.maxBytes + 1024 + items * 1024;
}

function validRange(range: unknown): range is HistoryReadRange {
  const r = range as Partial<HistoryReadRange> | undefined;
  return (
    Number.isSafeInteger(r?.startUs) &&
    Number.isSafeInteger(r?.endUs) &&
    Number.isSafeInteger(r?.limit) &&
    Number.isSafeInteger(r?.maxBytes)
  );
}

/** Adds a part to its message; false when the message would exceed `cap` bytes or the part is not its own. */
function add(assembly: Assembly, part: Part, cap: number): boolean {
  // A part carries at least a thousand characters unless it is the last: more parts than that allows is
  // not one of ours.
  if (part.of > Math.ceil(cap / 1000) + 1) return false;
  if (assembly.parts.length === 0) assembly.parts = new Array(part.of);
  if (part.of !== assembly.parts.length || part.n >= part.of) return false;
  if (assembly.parts[part.n] !== undefined) return true;
  assembly.bytes += part.d.length;
  if (assembly.bytes > cap) return false;
  assembly.parts[part.n] = part.d;
  assembly.received++;
  return true;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parsePart(payload: string | undefined): Part | undefined {
  const part = parse(payload ?? "") as Partial<Part> | undefined;
  if (part === null || typeof part !== "object") return undefined;
  if (part.t !== "req" && part.t !== "res") return undefined;
  if (typeof part.id !== "string" || typeof part.d !== "string") return undefined;
  if (!Number.isSafeInteger(part.n) || !Number.isSafeInteger(part.of)) return undefined;
  if ((part.n as number) < 0 || (part.of as number) < 1) return undefined;
  if (part.t === "req" && (typeof part.o !== "string" || typeof part.c !== "string")) return undefined;
  if (part.t === "req" && part.k !== "w" && part.k !== "h") return undefined;
  return part as Part;
}

/**
 * `body` cut into pieces that each fit one notification once wrapped in `head` (JSON escaping and UTF-8
 * counted), never between the two halves of a surrogate pair.
 */
export function splitForPayloads(head: object, body: string): string[] {
  const budget =
    PAYLOAD_MAX_BYTES - Buffer.byteLength(JSON.stringify({ ...head, n: 999_999, of: 999_999, d: "" }));
  const pieces: string[] = [];
  let at = 0;
  do {
    let take = Math.min(body.length - at, budget);
    for (;;) {
      if (take > 1 && take < body.length - at && isHighSurrogate(body.charCodeAt(at + take - 1))) take--;
      const size = Buffer.byteLength(JSON.stringify(body.slice(at, at + take))) - 2;
      if (size <= budget) break;
      take = Math.max(1, Math.floor((take * budget) / size) - 1);
    }
    pieces.push(body.slice(at, at + take));
    at += take;
  } while (at < body.length);
  return pieces;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
