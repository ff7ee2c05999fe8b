import http, { type IncomingHttpHeaders } from "node:http";

/** An SSE client over node:http that records every event and how the stream ended. */
export interface SseClient {
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed `data:` payloads, in arrival order. */
  events: unknown[][];
  /** Comment lines (`: text`), without the leading colon and space. */
  comments: string[];
  /** Set for a non-200 answer: the parsed JSON body. */
  errorBody?: unknown;
  /** "end": the response ended normally; "error": it was cut off (reset, aborted). */
  ended: Promise<"end" | "error">;
  /** Resolves once `check` holds; rejects after `deadlineMs` (a deadline, not a timing assertion). */
  waitFor(check: () => boolean, deadlineMs?: number): Promise<void>;
  /** Drops the connection from the client side. */
  close(): void;
}

/** POSTs `body` as JSON to `url` and reads the answer as an SSE stream. */
export function openSse(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(url, {
      method: "POST",
      agent: false,
      headers: {
        "content-type": "application/json",
        accept: "text/event-stream",
        "content-length": Buffer.byteLength(payload),
        ...headers,
      },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let settle: (how: "end" | "error") => void = () => {};
      const ended = new Promise<"end" | "error">((r) => {
        let done = false;
        settle = (how) => {
          if (!done) {
            done = true;
            r(how);
          }
        };
      });
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        comments: [],
        ended,
        waitFor: async (check, deadlineMs = 10_000) => {
          const until = Date.now() + deadlineMs;
          while (!check()) {
            if (Date.now() > until) throw new Error("SSE condition not reached before the deadline");
            await new Promise((r) => setTimeout(r, 10));
          }
        },
        close: () => req.destroy(),
      };
      req.removeListener("error", reject);
      req.on("error", () => settle("error"));
      res.on("aborted", () => settle("error"));
      res.on("error", () => settle("error"));
      res.on("end", () => settle("end"));
      res.on("close", () => settle(res.complete ? "end" : "error"));
      res.setEncoding("utf8");
      let buffer = "";
      res.on("data", (chunk: string) => {
        buffer += chunk;
        if (client.status !== 200) return;
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) client.events.push(JSON.parse(line.slice(6)));
            else if (line.startsWith(":")) client.comments.push(line.slice(1).trimStart());
          }
          cut = buffer.indexOf("\n\n");
        }
      });
      if (client.status !== 200) {
        res.on("end", () => {
          try {
            client.errorBody = JSON.parse(buffer);
          } catch {
            client.errorBody = buffer;
          }
          resolve(client);
        });
      } else {
        resolve(client);
      }
    });
    req.end(payload);
  });
}
