// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import type tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, startTestServer, type TestServer } from "../helpers/server.js";
import { bearer, type TestKey, writeTestKeys } from "./keys.js";

const temp = makeTempDir("i3xd-tls-");
let certFile: string;
let keyFile: string;
let ca: Buffer;
let server: TestServer;
let key: TestKey;

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl for this test only. */
function selfSigned(name: string): { cert: string; key: string } {
  const cert = path.join(temp.dir, `${name}.crt`);
  const pem = path.join(temp.dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      pem,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  return { cert, key: pem };
}

function request(
  url: string,
  options: https.RequestOptions = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { ca, agent: false, ...options }, (res) => {
      const protocol = (res.socket as tls.TLSSocket).getProtocol();
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => {
        let body: any = text;
        try {
          body = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, protocol });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  ({ cert: certFile, key: keyFile } = selfSigned("server"));
  ca = readFileSync(certFile);
  const keys = await writeTestKeys(temp.dir, { client: { scopes: ["read"] } });
  key = keys.keys.client;
  server = await startTestServer({
    I3XD_TLS_CERT: certFile,
    I3XD_TLS_KEY: keyFile,
    I3XD_KEYS_FILE: keys.file,
    I3XD_METRICS_PORT: "0",
  });
});
afterAll(async () => {
  await server?.close();
  temp.remove();
});

describe("HTTPS", () => {
  it("serves the API over TLS with a certificate the client verifies", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const info = await request(`${server.url}/v1/info`);
    expect(info.status).toBe(200);
    expect(info.body.success).toBe(true);
    expect(["TLSv1.2", "TLSv1.3"]).toContain(info.protocol);
    expect(info.headers["strict-transport-security"]).toMatch(/max-age=\d+/);
    const denied = await request(`${server.url}/v1/namespaces`);
    expect(denied.status).toBe(401);
    expect(denied.body.responseDetail.status).toBe(401);
    const ok = await request(`${server.url}/v1/namespaces`, { headers: bearer(key) });
    expect(ok.status).toBe(200);
    expect(ok.body.result.length).toBeGreaterThan(0);
  });

  it("accepts TLS 1.2 and refuses TLS 1.1 and older", async () => {
    const v12 = await request(`${server.url}/v1/info`, { maxVersion: "TLSv1.2" });
    expect(v12.protocol).toBe("TLSv1.2");
    await expect(
      request(`${server.url}/v1/info`, {
        minVersion: "TLSv1",
        maxVersion: "TLSv1.1",
        ciphers: "DEFAULT:@SECLEVEL=0",
      }),
    ).rejects.toThrow();
  });

  it("does not answer plain HTTP on the TLS port", async () => {
    const plain = server.url.replace("https:", "http:");
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get(`${plain}/v1/info`, (res) => {
        res.resume();
        resolve(`status ${res.statusCode}`);
      });
      req.on("error", () => resolve("refused"));
      req.setTimeout(5000, () => {
        req.destroy();
        resolve("refused");
      });
    });
    expect(outcome).not.toBe("status 200");
  });

  it("serves the separate metrics listener over TLS too", async () => {
    expect(server.metricsUrl).toMatch(/^https:/);
    const res = await request(`${server.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(String(res.body)).toContain("entity_requests_total");
  });

  it("refuses to start with a key that does not belong to the certificate", async () => {
    const other = selfSigned("other");
    await expect(startTestServer({ I3XD_TLS_CERT: certFile, I3XD_TLS_KEY: other.key })).rejects.toThrow(
      /I3XD_TLS_CERT .* I3XD_TLS_KEY/,
    );
    await expect(startTestServer({ I3XD_TLS_CERT: certFile })).rejects.toThrow(/set together/);
    await expect(
      startTestServer({ I3XD_TLS_CERT: path.join(temp.dir, "missing.crt"), I3XD_TLS_KEY: keyFile }),
    ).rejects.toThrow(/cannot read I3XD_TLS_CERT/);
  });
});
