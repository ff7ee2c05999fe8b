import { randomUUID } from "node:crypto";
import pg from "pg";
import type { WriteBackItem, WriteBackRelay, WriteBackResult } from "../../domain/write-back.js";
import { getLogger } from "../../observability/logger.js";
import { PAYLOAD_MAX_BYTES } from "./pg-notify.js";

const log = getLogger("i3xd.connectors");

/** Its own channel: the change feed's listeners never see write-back traffic. */
export const WRITE_BACK_CHANNEL = "i3xd_writeback";

/** Longest detail carried back per item, when the response has room for it. */
const DETAIL_MAX = 200;

interface Request {
  t: "req";
  id: string;
  o: string;
  c: string;
  items: WriteBackItem[];
}

interface Response {
  t: "res";
  id: string;
  results: WriteBackResult[];
}

type Handler = (connector: string, items: readonly WriteBackItem[]) => Promise<WriteBackResult[]> | undefined;

/**
 * Write-back between replicas over PostgreSQL NOTIFY, on one dedicated LISTEN connection per process. A
 * replica that does not run a connector publishes the request; the replica that runs it (the only one whose
 * handler answers) writes to the source and publishes the results; the asking replica then stores accepted
 * values through its own write path, as it would for a local connector. A request and its answer each
 * travel in one notification (under 8000 bytes): a larger write-back is refused per item rather than split,
 * since its items must reach the source together. A lost connection reconnects with backoff; requests
 * waiting meanwhile time out.
 */
export class PgWriteBackRelay implements WriteBackRelay {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly origin = randomUUID();
  private readonly waiting = new Map<string, (results: WriteBackResult[]) => void>();
  private handler: Handler | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private attempts = 0;

  constructor(private readonly connectionString: string) {}

  /** Connects and LISTENs, so requests from other replicas are answered from start-up on. */
  async start(): Promise<void> {
    await this.connection();
  }

  serve(handler: Handler): void {
    this.handler = handler;
  }

  async forward(
    connector: string,
    items: readonly WriteBackItem[],
    timeoutMs: number,
  ): Promise<WriteBackResult[]> {
    const refuse = (status: number, detail: string) =>
      items.map(() => ({ ok: false as const, status, detail }));
    const request: Request = { t: "req", id: randomUUID(), o: this.origin, c: connector, items: [...items] };
    const payload = JSON.stringify(request);
    if (Buffer.byteLength(payload) > PAYLOAD_MAX_BYTES) {
      return refuse(
        413,
        `connector "${connector}" runs on another replica, and this write-back is too large to hand over (at most ${PAYLOAD_MAX_BYTES} bytes of JSON per request); write fewer or smaller values per request, or send it to the replica that runs the connector`,
      );
    }
    let client: pg.Client;
    try {
      client = await this.connection();
    } catch (err) {
      return refuse(
        503,
        `connector "${connector}" runs on another replica, which cannot be reached now: ${(err as Error).message}`,
      );
    }
    const answered = new Promise<WriteBackResult[] | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(request.id);
        resolve(undefined);
      }, timeoutMs);
      timer.unref();
      this.waiting.set(request.id, (results) => {
        clearTimeout(timer);
        this.waiting.delete(request.id);
        resolve(results);
      });
    });
    try {
      await client.query("SELECT pg_notify($1, $2)", [WRITE_BACK_CHANNEL, payload]);
    } catch (err) {
      this.waiting.get(request.id)?.(
        refuse(503, `could not hand the write-back over: ${(err as Error).message}`),
      );
    }
    const results = await answered;
    if (results === undefined) {
      return refuse(
        503,
        `connector "${connector}" is not running on any replica that answered within ${timeoutMs} ms; retry later`,
      );
    }
    if (results.length !== items.length) {
      return refuse(
        502,
        `the replica running connector "${connector}" answered with the wrong number of results`,
      );
    }
    return results;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    if (this.closed) return Promise.reject(new Error("write-back relay closed"));
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: "i3xd-writeback",
      keepAlive: true,
      connectionTimeoutMillis: 5000,
    });
    client.on("error", (err) => this.lost(client, err));
    client.on("end", () => this.lost(client));
    client.on("notification", (msg) => {
      if (msg.channel === WRITE_BACK_CHANNEL) this.onNotification(client, msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WRITE_BACK_CHANNEL}`);
    } catch (err) {
      client.removeAllListeners("end");
      client.removeAllListeners("error");
      client.on("error", () => {});
      client.end().catch(() => {});
      throw err;
    }
    if (this.closed) {
      client.end().catch(() => {});
      throw new Error("write-back relay closed");
    }
    this.client = client;
    this.attempts = 0;
    return client;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (client !== this.client) return;
    this.client = undefined;
    client.end().catch(() => {});
    if (this.closed) return;
    log.warn({ exception: err }, "Write-back relay connection lost; reconnecting");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    const base = Math.min(5000, 100 * 2 ** this.attempts);
    this.attempts++;
    this.timer = setTimeout(
      () => {
        this.connection().catch(() => this.scheduleReconnect());
      },
      base / 2 + Math.random() * (base / 2),
    );
    this.timer.unref();
  }

  private onNotification(client: pg.Client, payload: string | undefined): void {
    let message: Request | Response;
    try {
      message = JSON.parse(payload ?? "");
    } catch {
      return;
    }
    if (message?.t === "res") {
      if (Array.isArray(message.results)) this.waiting.get(message.id)?.(message.results);
      return;
    }
    if (message?.t !== "req" || message.o === this.origin || !Array.isArray(message.items)) return;
    const handling = this.handler?.(message.c, message.items);
    if (handling === undefined) return;
    handling
      .catch((err: unknown) =>
        message.items.map(() => ({
          ok: false as const,
          status: 502,
          detail: `write-back failed: ${(err as Error).message}`,
        })),
      )
      .then((results) => {
        return client.query("SELECT pg_notify($1, $2)", [
          WRITE_BACK_CHANNEL,
          encodeResponse(message.id, results),
        ]);
      })
      .catch((err: unknown) =>
        log.warn(
          { exception: err, connector: message.c },
          "Could not answer a write-back from another replica",
        ),
      );
  }
}

/**
 * The response in one notification: details are shortened as far as the number of items requires (the
 * request fitted in one, so its results, without long details, do too).
 */
function encodeResponse(id: string, results: readonly WriteBackResult[]): string {
  for (let max = DETAIL_MAX; ; max = Math.floor(max / 2)) {
    const answer: Response = {
      t: "res",
      id,
      results: results.map((r) => (r.ok ? r : { ...r, detail: r.detail.slice(0, max) })),
    };
    const text = JSON.stringify(answer);
    if (Buffer.byteLength(text) <= PAYLOAD_MAX_BYTES || max === 0) return text;
  }
}
