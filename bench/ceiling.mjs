// The ceiling: the least an HTTP server on this machine can do per request — read the body, answer a
// fixed ~200-byte JSON document. i3xd's throughput is reported as a ratio to this, measured in the same run.
import http from "node:http";

const body = JSON.stringify({
  success: true,
  result: {
    isComposition: false,
    value: 67.1,
    quality: "Good",
    timestamp: "2026-01-29T16:37:41.000Z",
    note: "ceiling reference response of about two hundred bytes, fixed",
  },
});
const length = Buffer.byteLength(body);

const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": length });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
