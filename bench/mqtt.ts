/**
 * The `mqtt` case: what the MQTT connector sustains from the broker to the store, and how long a value
 * takes from an MQTT publish to a subscriber's SSE stream. One i3xd (SQLite, observability on as the
 * harness sets it) with one `kind: mqtt` connector on the local Mosquitto (`BENCH_MQTT_URL`).
 *
 * Throughput is measured closed-loop: the publisher sends batches and keeps at most two in flight,
 * waiting for the last message of the batch before last to be stored (a sentinel topic whose value is the
 * batch number; the connector handles messages in order). So the broker never has to queue more than the
 * two batches for the connector and drops nothing of its own, and the rate is what i3xd sustains.
 * Latency: 1,000 values/s over 100 topics, each value stamped when published and matched by value on
 * the SSE stream of a subscription to all 100 elements.
 */
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";

/** What the case needs from the harness (bench/run.ts); its shapes, kept structural. */
export interface MqttHarness {
  startI3xd(
    label: string,
    env: Record<string, string>,
  ): Promise<{ url: string; child: { pid?: number }; close(): Promise<void> }>;
  figureRow(name: string, store: string, figures: Record<string, unknown>): unknown;
  add(row: unknown): unknown;
  addTarget(target: { target: string; want: string; measured: string; met: boolean | null }): void;
  rssMb(pid: number | undefined): number | null;
}

const BROKER = process.env.BENCH_MQTT_URL ?? "mqtt://127.0.0.1:1883";
const SECONDS = Number(process.env.BENCH_DURATION ?? 10);
/** Values per second the ingest target wants, and the rate the latency target is taken at. */
const INGEST_TARGET = 20_000;
const LATENCY_RATE = 1000;
const LATENCY_TARGET_MS = 50;
const SCALAR_TOPICS = 1000;
const OBJECT_TOPICS = 10;
const MEMBERS = 100;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function mqttConnectorCost(h: MqttHarness, observedEnv: Record<string, string>): Promise<void> {
  const prefix = `i3xd-bench/${process.pid}-${Date.now().toString(36)}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-mqtt-"));
  const file = path.join(dir, "connectors.json");
  fs.writeFileSync(
    file,
    JSON.stringify({
      connectors: [
        {
          name: "bench",
          kind: "mqtt",
          url: BROKER,
          clientId: `i3xd-bench-${process.pid}`,
          rules: [{ topic: `${prefix}/v/{tag}` }, { topic: `${prefix}/obj/{tag}`, composition: true }],
        },
      ],
    }),
  );
  const server = await h.startI3xd("mqtt", {
    ...observedEnv,
    I3XD_DEMO: "false",
    I3XD_CONNECTORS_FILE: file,
  });
  const publisher = await mqtt.connectAsync(BROKER, { clientId: `i3xd-bench-pub-${process.pid}` });
  try {
    const scalars = await throughput(server.url, publisher, prefix, "scalar");
    h.add(
      h.figureRow("MQTT → stored, 1 value per message", "sqlite", {
        extra: {
          valuesPerSec: scalars.valuesPerSec,
          messagesPerSec: scalars.messagesPerSec,
          dropped: scalars.dropped,
        },
        rssMb: h.rssMb(server.child.pid),
      }),
    );
    const objects = await throughput(server.url, publisher, prefix, "object");
    h.add(
      h.figureRow(`MQTT → stored, ${MEMBERS}-member JSON objects`, "sqlite", {
        extra: {
          valuesPerSec: objects.valuesPerSec,
          messagesPerSec: objects.messagesPerSec,
          dropped: objects.dropped,
        },
        rssMb: h.rssMb(server.child.pid),
      }),
    );
    const best = Math.max(scalars.valuesPerSec, objects.valuesPerSec);
    h.addTarget({
      target: "MQTT ingest (SQLite, observability on)",
      want: `≥ ${INGEST_TARGET.toLocaleString("en")} values/s`,
      measured: `${scalars.valuesPerSec} values/s single, ${objects.valuesPerSec} in objects`,
      met: best >= INGEST_TARGET,
    });
    const latency = await publishToSse(server.url, publisher, prefix);
    h.add(
      h.figureRow(`MQTT publish → SSE at ${LATENCY_RATE} values/s`, "sqlite", {
        p50Ms: latency.p50,
        p99Ms: latency.p99,
        extra: { delivered: latency.delivered, published: latency.published },
      }),
    );
    h.addTarget({
      target: `MQTT publish → SSE p99 at ${LATENCY_RATE} values/s`,
      want: `≤ ${LATENCY_TARGET_MS} ms`,
      measured: `${latency.p99} ms`,
      met: latency.p99 <= LATENCY_TARGET_MS && latency.delivered === latency.published,
    });
  } finally {
    await publisher.endAsync();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Throughput {
  valuesPerSec: number;
  messagesPerSec: number;
  dropped: number;
}

async function throughput(
  url: string,
  client: MqttClient,
  prefix: string,
  shape: "scalar" | "object",
): Promise<Throughput> {
  const topics = shape === "scalar" ? SCALAR_TOPICS : OBJECT_TOPICS;
  const perMessage = shape === "scalar" ? 1 : MEMBERS;
  const batchMessages = shape === "scalar" ? 400 : 4;
  const topicOf = (i: number) => `${prefix}/${shape === "scalar" ? "v" : "obj"}/t${i % topics}`;
  const payloadOf = (n: number) =>
    shape === "scalar"
      ? String(n)
      : JSON.stringify(
          Object.fromEntries(Array.from({ length: MEMBERS }, (_, m) => [`m${m}`, n + m / 1000])),
        );
  const sentinel = `${prefix}/v/sentinel-${shape}`;
  const stored = async () => {
    const body = (await (
      await fetch(`${url}/v1/objects/value`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ elementIds: [sentinel] }),
      })
    ).json()) as { results?: Array<{ success: boolean; result?: { value: unknown } }> };
    const value = body.results?.[0]?.result?.value;
    return typeof value === "number" ? value : -1;
  };
  const waitFor = async (batch: number) => {
    while ((await stored()) < batch) await sleep(2);
  };
  const sendBatch = async (batch: number) => {
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < batchMessages; i++)
      sends.push(client.publishAsync(topicOf(batch * batchMessages + i), payloadOf(batch), { qos: 1 }));
    sends.push(client.publishAsync(sentinel, String(batch), { qos: 1 }));
    await Promise.all(sends);
  };

  // Warm-up: every topic once, so that creating the objects is not measured.
  for (let b = 0; b * batchMessages < topics; b++) await sendBatch(b);
  let batch = Math.ceil(topics / batchMessages);
  await waitFor(batch - 1);

  const droppedBefore = await droppedCount(url);
  const startedBatch = batch;
  const started = performance.now();
  while (performance.now() - started < SECONDS * 1000) {
    await sendBatch(batch);
    await waitFor(batch - 1);
    batch++;
  }
  await waitFor(batch - 1);
  const seconds = (performance.now() - started) / 1000;
  const messages = (batch - startedBatch) * batchMessages;
  return {
    valuesPerSec: Math.round((messages * perMessage) / seconds),
    messagesPerSec: Math.round(messages / seconds),
    dropped: (await droppedCount(url)) - droppedBefore,
  };
}

async function droppedCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const line of text.split("\n"))
    if (line.startsWith("connector_messages_total{") && line.includes('outcome="dropped"'))
      n += Number(line.split(" ").at(-1));
  return n;
}

async function publishToSse(url: string, client: MqttClient, prefix: string) {
  const ids = Array.from({ length: 100 }, (_, i) => `${prefix}/v/t${i}`);
  const post = async <T>(route: string, body: unknown) =>
    (await (
      await fetch(`${url}${route}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      })
    ).json()) as T;
  const clientId = "bench-mqtt";
  const sub = await post<{ result: { subscriptionId: string } }>("/v1/subscriptions", { clientId });
  const subscriptionId = sub.result.subscriptionId;
  await post("/v1/subscriptions/register", { clientId, subscriptionId, elementIds: ids });

  // Values above this never occurred before: each one identifies one publish.
  const base = 1_000_000_000;
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  const payload = JSON.stringify({ clientId, subscriptionId });
  const stream = http.request(`${url}/v1/subscriptions/stream`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "text/event-stream",
      "content-length": Buffer.byteLength(payload),
    },
  });
  await new Promise<void>((resolve, reject) => {
    stream.on("response", (res) => {
      if (res.statusCode !== 200) reject(new Error(`stream: ${res.statusCode}`));
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        const now = performance.now();
        buf += chunk;
        for (let at = buf.indexOf("\n\n"); at >= 0; at = buf.indexOf("\n\n")) {
          const event = buf.slice(0, at);
          buf = buf.slice(at + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            for (const u of JSON.parse(line.slice(5)) as Array<{ value: unknown }>) {
              const t = typeof u.value === "number" ? sentAt.get(u.value) : undefined;
              if (t !== undefined) latencies.push(now - t);
            }
          }
        }
      });
      resolve();
    });
    stream.on("error", reject);
    stream.end(payload);
  });
  await sleep(300);

  const perTick = LATENCY_RATE / 100;
  let n = 0;
  const started = performance.now();
  for (let tick = 0; performance.now() - started < SECONDS * 1000; tick++) {
    for (let i = 0; i < perTick; i++, n++) {
      const value = base + n;
      sentAt.set(value, performance.now());
      client.publish(ids[n % ids.length], String(value), { qos: 1 });
    }
    const next = started + (tick + 1) * 10;
    await sleep(Math.max(0, next - performance.now()));
  }
  await sleep(1000);
  stream.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    Math.round(
      (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN) * 100,
    ) / 100;
  return { p50: q(0.5), p99: q(0.99), delivered: latencies.length, published: n };
}
