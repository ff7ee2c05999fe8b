// biome-ignore-all lint/suspicious/noExplicitAny: response bodies in tests are arbitrary JSON read by assertions
import { gunzipSync } from "node:zlib";

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** GET a path below the server's base URL and parse the JSON answer. */
export async function getJson<T = any>(baseUrl: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}${path}`, { headers: { accept: "application/json", ...headers } });
  return toJson<T>(res);
}

/** POST (or PUT) a JSON body and parse the JSON answer. A string body is sent as it is. */
export async function postJson<T = any>(
  baseUrl: string,
  path: string,
  body: unknown,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<JsonResponse<T>> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: options.method ?? "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...options.headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return toJson<T>(res);
}

async function toJson<T>(res: Response): Promise<JsonResponse<T>> {
  const text = await res.text();
  let body: any;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

/** Raw HTTP/1.1 GET through node:http, which (unlike fetch) leaves gzip bodies undecoded. */
export async function getRaw(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
  body?: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const http = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** POST a JSON body; the answer's body as the server sent it, unparsed. */
export async function postText(url: string, body: unknown): Promise<string> {
  const res = await getRaw(url, { "content-type": "application/json" }, "POST", JSON.stringify(body));
  return res.body.toString("utf8");
}

export function gunzipJson(buf: Buffer): any {
  return JSON.parse(gunzipSync(buf).toString("utf8"));
}
