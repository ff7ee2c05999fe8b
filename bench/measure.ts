/**
 * What every bench case measures with: the harness bench/run.ts hands the cases kept in their own files,
 * percentiles of sorted samples, and i3X subscription streams (SSE) whose updates are handed over with the
 * time their chunk arrived.
 */
import http from "node:http";

/** What bench/run.ts gives the cases in their own files; its shapes, kept structural. */
export interface CaseHarness {
  startI3xd(
    label: string,
    env: Record<string, string>,
  ): Promise<{ url: string; child: { pid?: number }; close(): Promise<void> }>;
  figureRow(name: string, store: string, figures: Record<string, unknown>): unknown;
  add(row: unknown): unknown;
  addTarget(target: { target: string; want: string; measured: string; met: boolean | null }): void;
  rssMb(pid: number | undefined): number | null;
  cpuSeconds(pid: number | undefined): number;
}

/** The `q` quantile (0..1) of ascending `sorted` samples; NaN when there are none. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

export const round = (n: number) => Math.round(n * 100) / 100;

/** One update of a subscription stream, as far as the cases read it. */
export interface StreamUpdate {
  value: unknown;
  timestamp: string;
}

/** `now`: `performance.now()` when the chunk holding these updates arrived. */
export type OnUpdates = (updates: StreamUpdate[], now: number) => void;

/** Opens the stream of an existing subscription; resolves once the server has answered. */
export async function openStream(
  url: string,
  clientId: string,
  subscriptionId: string,
  onUpdates: OnUpdates,
  agent?: http.Agent,
): Promise<http.ClientRequest> {
  const payload = JSON.stringify({ clientId, subscriptionId });
  const req = http.request(`${url}/v1/subscriptions/stream`, {
    method: "POST",
    agent,
    headers: {
      "content-type": "application/json",
      accept: "text/event-stream",
      "content-length": Buffer.byteLength(payload),
    },
  });
  await new Promise<void>((resolve, reject) => {
    req.on("response", (res) => {
      if (res.statusCode !== 200) reject(new Error(`stream: ${res.statusCode}`));
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        const now = performance.now();
        buf += chunk;
        for (let at = buf.indexOf("\n\n"); at >= 0; at = buf.indexOf("\n\n")) {
          const event = buf.slice(0, at);
          buf = buf.slice(at + 2);
          for (const line of event.split("\n"))
            if (line.startsWith("data:")) onUpdates(JSON.parse(line.slice(5)) as StreamUpdate[], now);
        }
      });
      resolve();
    });
    req.on("error", reject);
    req.end(payload);
  });
  return req;
}

/** A new subscription of `clientId` to `elementIds`, and its open stream. */
export async function subscribeStream(
  url: string,
  clientId: string,
  elementIds: string[],
  onUpdates: OnUpdates,
): Promise<http.ClientRequest> {
  const post = async (route: string, body: unknown) =>
    (await fetch(`${url}${route}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then((r) => r.json())) as { result: { subscriptionId: string } };
  const { subscriptionId } = (await post("/v1/subscriptions", { clientId })).result;
  await post("/v1/subscriptions/register", { clientId, subscriptionId, elementIds });
  return openStream(url, clientId, subscriptionId, onUpdates);
}
