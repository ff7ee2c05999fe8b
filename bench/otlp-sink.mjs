// A loopback OTLP/HTTP receiver that accepts and discards spans, so the benchmark measures the cost of
// producing and exporting traces without a collector.
import http from "node:http";

let spansBatches = 0;
const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    spansBatches++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
});
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on("SIGTERM", () => {
  process.stderr.write(`otlp sink received ${spansBatches} export requests\n`);
  server.close(() => process.exit(0));
});
