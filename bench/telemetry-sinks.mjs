// Healthy loopback stand-ins for every telemetry back-end, in a process of their own so that what they
// spend receiving is not counted as i3xd's: an OTLP/HTTP collector (`/v1/traces`), Sentry's envelope
// endpoint (`/api/<project>/envelope/`), Loki's push API (`/loki/api/v1/push`) on one HTTP port, and a
// Logstash `tcp { codec => json_lines }` input on a TCP port. Each accepts and discards what it gets.
// `GET /stats` reports the Logstash port and what each one received.
import http from "node:http";
import net from "node:net";

const received = {
  otlp: { requests: 0, bytes: 0 },
  sentry: { requests: 0, bytes: 0 },
  loki: { requests: 0, bytes: 0 },
  logstash: { connections: 0, bytes: 0 },
  other: { requests: 0, bytes: 0 },
};

function sinkOf(url) {
  if (url.startsWith("/v1/traces")) return "otlp";
  if (/^\/api\/\d+\/envelope\/?/.test(url)) return "sentry";
  if (url.startsWith("/loki/api/v1/push")) return "loki";
  return "other";
}

const logstash = net.createServer((socket) => {
  received.logstash.connections++;
  socket.on("data", (chunk) => {
    received.logstash.bytes += chunk.length;
  });
  socket.on("error", () => {});
});

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ logstashPort: logstash.address().port, received }));
    return;
  }
  const sink = received[sinkOf(req.url ?? "")];
  req.on("data", (chunk) => {
    sink.bytes += chunk.length;
  });
  req.on("end", () => {
    sink.requests++;
    if (sink === received.loki) {
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
});
server.keepAliveTimeout = 65_000;

logstash.listen(0, "127.0.0.1", () => {
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
});
process.on("SIGTERM", () => {
  logstash.close();
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
