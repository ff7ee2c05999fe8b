import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import type { LimitsConfig } from "../config.js";
import { LogBursts } from "../observability/log-bursts.js";
import { getLogger } from "../observability/logger.js";
import { httpConnectionsOpen, httpConnectionsRejected } from "../observability/metrics.js";
import { Holdings } from "./quotas.js";

const log = getLogger("i3xd.security");

/**
 * Connection limits on the API listener. A connection costs a file descriptor whether or not it ever
 * sends a request, so slow or idle clients could otherwise use up the process's descriptors and lock
 * everyone out (the kernel then resets new connections without anything being logged). The cap leaves
 * descriptors for the store, log files and telemetry; the per-address share keeps one client from taking
 * the whole cap. Headers and keep-alive timeouts (transport.ts) free slow connections quickly.
 */
export function guardConnections(server: Server, limits: LimitsConfig): void {
  const bursts = new LogBursts(log, 10_000);
  const perAddress = new Holdings();
  const fdWarnAt = Math.floor(limits.fdLimit * 0.8);
  let open = 0;
  server.maxConnections = limits.maxConnections;

  server.on("drop", (data?: { remoteAddress?: string }) => {
    httpConnectionsRejected.inc({ reason: "max_connections" });
    bursts.write(
      "max_connections",
      "warn",
      { ip: data?.remoteAddress, max_connections: limits.maxConnections },
      "Connection refused: the server holds its maximum of connections (I3XD_MAX_CONNECTIONS)",
      { max_connections: limits.maxConnections },
    );
  });

  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress ?? "unknown";
    if (perAddress.count(address) >= limits.maxConnectionsPerAddress) {
      httpConnectionsRejected.inc({ reason: "per_address" });
      bursts.write(
        `per_address ${address}`,
        "warn",
        { ip: address, max_connections_per_address: limits.maxConnectionsPerAddress },
        "Connection refused: this client address holds its maximum of connections (I3XD_MAX_CONNECTIONS_PER_ADDRESS)",
        { ip: address },
      );
      socket.destroy();
      return;
    }
    perAddress.take(address);
    open++;
    httpConnectionsOpen.inc();
    if (open >= fdWarnAt) {
      bursts.write(
        "fd_limit",
        "warn",
        { connections: open, fd_limit: limits.fdLimit },
        "Open connections reached 80 % of the process's file descriptor limit",
      );
    }
    socket.once("close", () => {
      open--;
      httpConnectionsOpen.dec();
      perAddress.give(address);
    });
  });
}

/**
 * A response sent before its request body was read (a 415, a 413, a route that ignores bodies) leaves the
 * rest of the body on the connection, and a decompressing parser stopped mid-body holds the socket paused:
 * the next request on that keep-alive connection would then wait for the request timeout. The rest of the
 * body is discarded, up to the body limit; a client sending more loses the connection.
 */
export function drainUnreadBodies(app: FastifyInstance, bodyLimit: number): void {
  app.addHook("onResponse", (request, _reply, done) => {
    const raw = request.raw;
    if (raw.complete || raw.destroyed) return done();
    raw.unpipe();
    let drained = 0;
    raw.on("data", (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > bodyLimit) raw.socket?.destroy();
    });
    raw.resume();
    done();
  });
}
