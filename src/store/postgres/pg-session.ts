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
