import { ApiError, authHeaders, callApi, currentValues, type Vqt } from "./api.js";

export interface LiveUpdate extends Vqt {
  elementId: string;
}

export interface LiveEvents {
  update(update: LiveUpdate): void;
  status(state: "connecting" | "live" | "reconnecting" | "off", detail?: string): void;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;
/** Registrations are batched: a tree expansion changes many visible objects at once. */
const SYNC_DELAY_MS = 100;

/**
 * Live values of the objects on screen: one subscription, registered for exactly those objects, read through
 * its SSE stream. The stream is a POST, so it is read with `fetch` and a readable stream (EventSource can
 * only GET). When the stream ends (server restart, network) it is reopened with backoff; a subscription
 * the server no longer knows (404) is created again, and current values are read again so nothing missed
 * while disconnected stays on screen. The subscription is deleted when the page goes away.
 */
export class LiveValues {
  private readonly clientId = `i3xd-console-${crypto.randomUUID()}`;
  private subscriptionId: string | undefined;
  private wanted = new Set<string>();
  private registered = new Set<string>();
  private syncTimer: number | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private stream: AbortController | undefined;
  private stopped = false;

  constructor(private readonly events: LiveEvents) {
    window.addEventListener("pagehide", () => this.stop());
    // A page restored from the back/forward cache had its subscription deleted on the way out.
    window.addEventListener("pageshow", (e) => {
      if (!e.persisted || !this.stopped) return;
      this.stopped = false;
      this.subscriptionId = undefined;
      this.start();
    });
  }

  /** The objects whose values should stay current. */
  watch(elementIds: Iterable<string>): void {
    this.wanted = new Set(elementIds);
    if (this.syncTimer !== undefined) return;
    this.syncTimer = window.setTimeout(() => {
      this.syncTimer = undefined;
      this.syncing = this.syncing.then(() => this.syncRegistrations()).catch(() => {});
    }, SYNC_DELAY_MS);
  }

  start(): void {
    void this.run();
  }

  /** Deletes the subscription; `keepalive` lets the request outlive the page. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stream?.abort();
    const id = this.subscriptionId;
    if (id === undefined) return;
    void fetch("/v1/subscriptions/delete", {
      method: "POST",
      keepalive: true,
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ clientId: this.clientId, subscriptionIds: [id] }),
    }).catch(() => {});
  }

  private async ensureSubscription(): Promise<string> {
    if (this.subscriptionId !== undefined) return this.subscriptionId;
    const created = await callApi<{ result: { subscriptionId: string } }>("POST", "/v1/subscriptions", {
      clientId: this.clientId,
      displayName: "i3xd console",
    });
    this.subscriptionId = created.result.subscriptionId;
    this.registered.clear();
    return this.subscriptionId;
  }

  private async syncRegistrations(): Promise<void> {
    if (this.subscriptionId === undefined || this.stopped) return;
    const add = [...this.wanted].filter((id) => !this.registered.has(id));
    const remove = [...this.registered].filter((id) => !this.wanted.has(id));
    const body = { clientId: this.clientId, subscriptionId: this.subscriptionId };
    if (add.length > 0) {
      await callApi("POST", "/v1/subscriptions/register", { ...body, elementIds: add });
      for (const id of add) this.registered.add(id);
      await this.refresh(add);
    }
    if (remove.length > 0) {
      await callApi("POST", "/v1/subscriptions/unregister", { ...body, elementIds: remove });
      for (const id of remove) this.registered.delete(id);
    }
  }

  /** Current values, for objects just registered or after a gap in the stream. */
  private async refresh(elementIds: string[]): Promise<void> {
    const values = await currentValues(elementIds);
    for (const [elementId, v] of values) this.events.update({ elementId, ...v });
  }

  private async run(): Promise<void> {
    let delay = RETRY_MIN_MS;
    let first = true;
    while (!this.stopped) {
      this.events.status(first ? "connecting" : "reconnecting");
      try {
        await this.ensureSubscription();
        await this.syncRegistrations();
        if (!first) await this.refresh([...this.registered]);
        first = false;
        await this.readStream(() => {
          delay = RETRY_MIN_MS;
          this.events.status("live");
        });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) this.subscriptionId = undefined;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 501)) {
          this.events.status("off", err.message);
          return;
        }
        first = false;
      }
      if (this.stopped) return;
      this.events.status("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  private async readStream(opened: () => void): Promise<void> {
    const abort = new AbortController();
    this.stream = abort;
    const res = await fetch("/v1/subscriptions/stream", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...authHeaders() },
      body: JSON.stringify({ clientId: this.clientId, subscriptionId: this.subscriptionId }),
      signal: abort.signal,
    });
    if (!res.ok || res.body === null) {
      await res.body?.cancel();
      throw new ApiError(res.status, `The stream answered ${res.status}`);
    }
    opened();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
      }
    }
  }

  /** One SSE event: its `data:` lines joined make a JSON array of updates; comments are keep-alives. */
  private dispatch(block: string): void {
    const data = block
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
      .join("\n");
    if (data === "") return;
    let updates: unknown;
    try {
      updates = JSON.parse(data);
    } catch {
      return;
    }
    if (!Array.isArray(updates)) return;
    for (const u of updates as LiveUpdate[]) {
      if (typeof u?.elementId === "string") this.events.update(u);
    }
  }
}
