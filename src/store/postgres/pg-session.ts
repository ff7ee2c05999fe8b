import pg from "pg";

/**
 * A dedicated PostgreSQL session outside the pool, for what must live on one connection: session-level
 * advisory locks (leadership) and LISTEN (change feed, connector relay).
 */
export interface SessionOptions {
  connectionString: string;
  /** Shown in `pg_stat_activity`, so each dedicated session can be told apart there. */
  applicationName: string;
  /** Called on the session's error or end; the owner decides whether it still cares about this client. */
  onLost(client: pg.Client, err?: Error): void;
  /** LISTEN on `channel` before the session is handed over; `onNotification` gets its payloads. */
  listen?: { channel: string; onNotification(payload: string | undefined, client: pg.Client): void };
}

/** Connects (and listens); on failure the half-open client is ended quietly and the error thrown. */
export async function openSession(options: SessionOptions): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: options.connectionString,
    application_name: options.applicationName,
    keepAlive: true,
    connectionTimeoutMillis: 5000,
  });
  client.on("error", (err) => options.onLost(client, err));
  client.on("end", () => options.onLost(client));
  const listen = options.listen;
  if (listen)
    client.on("notification", (msg) => {
      if (msg.channel === listen.channel) listen.onNotification(msg.payload, client);
    });
  try {
    await client.connect();
    if (listen) await client.query(`LISTEN ${listen.channel}`);
  } catch (err) {
    client.removeAllListeners("end");
    client.removeAllListeners("error");
    client.on("error", () => {});
    // Not awaited: ending a connection the server already closed may never settle.
    client.end().catch(() => {});
    throw err;
  }
  return client;
}

/** Ends the session, waiting at most a second: ending a connection that is already dead may never settle. */
export async function endSession(client: pg.Client): Promise<void> {
  await Promise.race([client.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
}

/**
 * A dedicated session opened on first use, and again on the first use after it was lost. `onOpened` runs
 * for each session opened; `onLost` once for each session lost while in use (never for one ended by
 * `close`), after it was let go.
 */
export class LazySession {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private closed = false;

  constructor(
    private readonly options: Omit<SessionOptions, "onLost"> & {
      /** Names the owner in the error a use after `close` gets ("leader election closed"). */
      owner: string;
      onOpened?(client: pg.Client): void;
      onLost(err?: Error): void;
    },
  ) {}

  /** The open session, if there is one now (an owner compares it to tell a newer session apart). */
  get current(): pg.Client | undefined {
    return this.client;
  }

  get(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    if (this.closed) return Promise.reject(new Error(`${this.options.owner} closed`));
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** Ends the session for good; `current` is cleared before this returns its promise. */
  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    if (client) await endSession(client);
  }

  private async open(): Promise<pg.Client> {
    const { connectionString, applicationName, listen } = this.options;
    const client = await openSession({
      connectionString,
      applicationName,
      listen,
      onLost: (lost, err) => this.lost(lost, err),
    });
    if (this.closed) {
      client.end().catch(() => {});
      throw new Error(`${this.options.owner} closed`);
    }
    this.client = client;
    this.options.onOpened?.(client);
    return client;
  }

  private lost(client: pg.Client, err?: Error): void {
    if (client !== this.client) return;
    this.client = undefined;
    client.end().catch(() => {});
    this.options.onLost(err);
  }
}
