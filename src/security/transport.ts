import { readFileSync } from "node:fs";
import { type Server, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createSecureContext, type SecureVersion } from "node:tls";
import type { FastifyError, FastifyHttpOptions, FastifyReply, FastifyRequest } from "fastify";
import type { Config } from "../config.js";
import { failureBody } from "../domain/errors.js";
import { LogBursts } from "../observability/log-bursts.js";
import { getLogger } from "../observability/logger.js";
import { httpParserErrors } from "../observability/metrics.js";
import { KeyConfigError } from "./keys.js";

/** A scanner sending garbage gets one line per status and address every 10 s, not one per request. */
const parserBursts = new LogBursts(getLogger("i3xd.http"), 10_000);

const MIN_TLS: SecureVersion = "TLSv1.2";

/**
 * Server options for the transport: HTTPS when a certificate is configured (TLS 1.2 or newer), the header
 * size limit, the request receipt deadline, and a handler that answers malformed HTTP with the failure
 * envelope instead of Node's bare status line. Spread into the `Fastify({...})` options.
 */
export function serverOptions(config: Config): FastifyHttpOptions<Server> {
  // Node would answer a missing Host header with a bare 400; the security hook answers it in the envelope.
  const common = {
    maxHeaderSize: config.maxHeaderSize,
    requireHostHeader: false,
    // Slow senders are cut off: headers within I3XD_HEADERS_TIMEOUT, the whole request within the request
    // timeout. Node only looks every so often (30 s by default), so it looks at a quarter of the shorter.
    headersTimeout: Math.min(config.limits.headersTimeoutMs, config.requestTimeoutMs),
    connectionsCheckingInterval: Math.min(
      30_000,
      Math.max(100, Math.floor(Math.min(config.limits.headersTimeoutMs, config.requestTimeoutMs) / 4)),
    ),
  };
  const options: Record<string, unknown> = {
    requestTimeout: config.requestTimeoutMs,
    // Fastify's default (72 s) lets idle connections hold descriptors far longer than a client needs.
    keepAliveTimeout: config.limits.keepAliveTimeoutMs,
    clientErrorHandler,
    // Errors Fastify raises before routing (a URL that does not decode) get the envelope as well.
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      const detail =
        error.code === "FST_ERR_BAD_URL"
          ? "The URL is not valid (malformed percent-encoding)"
          : error.message;
      reply.code(400).send(failureBody(400, detail));
    },
  };
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    options.https = { ...readTls(config.tlsCert, config.tlsKey), minVersion: MIN_TLS, ...common };
  } else {
    options.http = common;
  }
  // The https variant types differently; Fastify accepts either at run time.
  return options as FastifyHttpOptions<Server>;
}

/** Reads and checks the PEM files, so a wrong path or a key that does not fit stops start-up clearly. */
export function readTls(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, variable: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new KeyConfigError(`cannot read ${variable} file ${file}: ${(err as Error).message}`);
    }
  };
  const cert = read(certFile, "I3XD_TLS_CERT");
  const key = read(keyFile, "I3XD_TLS_KEY");
  try {
    createSecureContext({ cert, key, minVersion: MIN_TLS });
  } catch (err) {
    throw new KeyConfigError(
      `I3XD_TLS_CERT (${certFile}) and I3XD_TLS_KEY (${keyFile}) are not a usable PEM certificate and key: ${(err as Error).message}`,
    );
  }
  return { cert, key };
}

/** Swagger UI's page policy, tightened: no framing, and no https upgrade on a plain-HTTP server. */
export function docsCsp(config: Config): (header: string) => string {
  const tls = config.tlsCert !== undefined;
  return (header) => {
    let h = header.replace("frame-ancestors 'self'", "frame-ancestors 'none'");
    if (!tls) h = h.replace(/\s*upgrade-insecure-requests;?/, "");
    return h;
  };
}

/**
 * Answers what Node's HTTP parser rejects before Fastify sees a request (oversized headers, garbage
 * request lines, request timeouts) with the failure envelope, then closes the connection.
 */
export function clientErrorHandler(err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status = 400;
  let detail = "Malformed HTTP request";
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    detail = "Request headers are larger than the server accepts";
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    detail = "The request was not received in time";
  }
  httpParserErrors.inc({ code: status });
  const address = (socket as Partial<Socket>).remoteAddress;
  parserBursts.write(
    `${status} ${address}`,
    "info",
    { status_code: status, reason: err.code, ip: address },
    "HTTP request rejected before routing",
    { status_code: status, ip: address },
  );
  // A response to HEAD has no body; a client reading one would take it for the start of the next response.
  const head = err.rawPacket !== undefined && err.rawPacket.subarray(0, 5).toString("latin1") === "HEAD ";
  const body = head
    ? ""
    : JSON.stringify(failureBody(status, detail, status === 408 ? "Request Timeout" : undefined));
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        "Content-Type: application/json; charset=utf-8\r\n" +
        `Content-Length: ${head ? 0 : Buffer.byteLength(body)}\r\n` +
        "X-Content-Type-Options: nosniff\r\n" +
        "Cache-Control: no-store\r\n" +
        "Connection: close\r\n\r\n" +
        body,
    );
  }
  // Whatever the client still sends is not read; do not keep the socket around for it.
  setTimeout(() => socket.destroy(), 1000).unref();
}
