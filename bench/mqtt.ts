/**
 * The `mqtt` case: what the MQTT connector sustains from the broker to the store, and how long a value
 * takes from an MQTT publish to a subscriber's SSE stream. One i3xd (SQLite, observability on as the
 * harness sets it) with one `kind: mqtt` connector on a Mosquitto the case starts itself.
 *
 * Throughput is measured open-loop: after one message per topic (objects created, not measured) the
 * publisher sends 1.5 × the target's worth of values for BENCH_DURATION seconds as fast as the broker takes
 * them, then a sentinel; the broker queues what the connector has not read (backpressure pauses it), and
 * the rate is messages over the time until the sentinel is stored (messages are handled in order).
 * Latency: 1,000 values/s over 100 topics, each value stamped when published and matched by value on
 * the SSE stream of a subscription to all 100 elements.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { type CaseHarness, quantile, round, subscribeStream } from "./measure.js";

const SECONDS = Number(process.env.BENCH_DURATION ?? 10);
/** Values per second the ingest target wants, and the rate the latency target is taken at. */
const INGEST_TARGET = 20_000;
const LATENCY_RATE = 1000;
const LATENCY_TARGET_MS = 50;
const SCALAR_TOPICS = 1000;
const OBJECT_TOPICS = 10;
const MEMBERS = 100;
/** Topics (and `mosquitto_pub` processes) the measured load is spread over. */
const FLOOD_TOPICS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function mqttConnectorCost(h: CaseHarness, observedEnv: Record<string, string>): Promise<void> {
  const prefix = `i3xd-bench/${process.pid}-${Date.now().toString(36)}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "i3xd-bench-mqtt-"));
  const broker = await startBroker(dir);
  const BROKER = broker.url;
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
  // Messages published before the connector has subscribed would never arrive.
  for (;;) {
    const ready = (await (await fetch(`${server.url}/health/ready`)).json()) as {
      result?: { connectors?: { state: string }[] };
    };
    if (ready.result?.connectors?.[0]?.state === "up") break;
    await sleep(50);
  }
  const publisher = await mqtt.connectAsync(BROKER, { clientId: `i3xd-bench-pub-${process.pid}` });
  console.error(`  mqtt: server and publisher up, topics under ${prefix}/`);
  try {
    const scalars = await throughput(server.url, publisher, BROKER, prefix, "scalar");
    h.add(
      h.figureRow("MQTT → stored, 1 value per message", "sqlite", {
        extra: { ...scalars },
        rssMb: h.rssMb(server.child.pid),
      }),
    );
    const objects = await throughput(server.url, publisher, BROKER, prefix, "object");
    h.add(
      h.figureRow(`MQTT → stored, ${MEMBERS}-member JSON objects`, "sqlite", {
        extra: { ...objects },
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
    broker.process.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A Mosquitto of the case's own, on a free port: the open-loop throughput run needs a broker that queues
 * for a subscriber without limit (`max_queued_messages 0`), which the machine's broker does not.
 */
async function startBroker(dir: string): Promise<{ url: string; process: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
  const conf = path.join(dir, "mosquitto.conf");
  fs.writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 100\n`,
  );
  const child = spawn("mosquitto", ["-c", conf], { stdio: "ignore" });
  const url = `mqtt://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    try {
      const probe = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000 });
      await probe.endAsync();
      return { url, process: child };
    } catch (err) {
      if (tries > 100) throw err;
      await sleep(50);
    }
  }
}

interface Throughput {
  valuesPerSec: number;
  messagesPerSec: number;
  /** How fast the publisher got its messages to the broker: the rate cannot exceed it. */
  publishedPerSec: number;
  dropped: number;
}

async function throughput(
  url: string,
  client: MqttClient,
  brokerUrl: string,
  prefix: string,
  shape: "scalar" | "object",
): Promise<Throughput> {
  const { hostname: brokerHost, port: brokerPort } = new URL(brokerUrl);
  const topics = shape === "scalar" ? SCALAR_TOPICS : OBJECT_TOPICS;
  const perMessage = shape === "scalar" ? 1 : MEMBERS;
  const messages = Math.round((SECONDS * INGEST_TARGET * 1.5) / perMessage);
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
  const waitFor = async (mark: number) => {
    while ((await stored()) < mark) await sleep(5);
  };
  const publish = async (from: number, to: number) => {
    for (let start = from; start < to; start += 500) {
      const sends: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(to, start + 500); i++)
        sends.push(client.publishAsync(topicOf(i), payloadOf(i), { qos: 1 }));
      await Promise.all(sends);
    }
  };
  // The measured load comes from `mosquitto_pub -l` (one per topic, in parallel): one MQTT.js client in
  // this process publishes too slowly to find the connector's limit.
  const flood = async (count: number) => {
    const perTopic = Math.ceil(count / FLOOD_TOPICS);
    await Promise.all(
      Array.from({ length: FLOOD_TOPICS }, async (_, t) => {
        const child = spawn(
          "mosquitto_pub",
          ["-h", brokerHost, "-p", brokerPort, "-q", "1", "-l", "-t", topicOf(t)],
          {
            stdio: ["pipe", "ignore", "inherit"],
          },
        );
        const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
        const lines: string[] = [];
        for (let i = 0; i < perTopic; i++) lines.push(payloadOf(t * perTopic + i));
        child.stdin.end(`${lines.join("\n")}\n`);
        const code = await exited;
        if (code !== 0) throw new Error(`mosquitto_pub exited with ${code}`);
      }),
    );
    return perTopic * FLOOD_TOPICS;
  };
  // Warm-up: every topic once, so that creating the objects is not measured.
  await publish(0, topics);
  await client.publishAsync(sentinel, "0", { qos: 1 });
  await waitFor(0);
  console.error(`  mqtt ${shape}: ${topics} topics created; publishing ${messages} messages`);

  // Open loop: the broker (ours, without a queue limit) holds whatever the connector has not read yet,
  // and the connector handles messages in order, so the sentinel after the last one marks the end.
  const droppedBefore = await droppedCount(url);
  const started = performance.now();
  const sent = await flood(messages);
  const publishedIn = (performance.now() - started) / 1000;
  await client.publishAsync(sentinel, "1", { qos: 1 });
  await waitFor(1);
  const seconds = (performance.now() - started) / 1000;
  return {
    valuesPerSec: Math.round((sent * perMessage) / seconds),
    messagesPerSec: Math.round(sent / seconds),
    publishedPerSec: Math.round(sent / publishedIn),
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
  // Values above this never occurred before: each one identifies one publish.
  const base = 1_000_000_000;
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  const stream = await subscribeStream(url, "bench-mqtt", ids, (updates, now) => {
    for (const u of updates) {
      const t = typeof u.value === "number" ? sentAt.get(u.value) : undefined;
      if (t !== undefined) latencies.push(now - t);
    }
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
  const q = (p: number) => round(quantile(latencies, p));
  return { p50: q(0.5), p99: q(0.99), delivered: latencies.length, published: n };
}
