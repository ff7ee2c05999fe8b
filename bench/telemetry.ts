/**
 * The `telemetry` case: what each telemetry back-end costs the server while it is healthy. The value case
 * on six i3xd processes side by side (none, Loki only, Logstash only, OTLP at 10 %, Sentry only at its
 * default sample rate, all four; and no sink with `LOG_CALLER=true`), alternating in slices with the floor; the back-ends are loopback
 * receivers in a process of their own (`bench/telemetry-sinks.mjs`), so only i3xd's own CPU is counted.
 * `BENCH_CASES=shipping` runs the none and all-four pair only.
 */
import path from "node:path";

/** What the case needs from the harness (bench/run.ts); its shapes, kept structural. */
export interface TelemetryHarness {
  valueCase: string;
  startNodeHelper(script: string, env?: Record<string, string>): Promise<HelperProc>;
  startI3xd(label: string, env: Record<string, string>): Promise<HelperProc & { close(): Promise<void> }>;
  discover(url: string): Promise<{ ids: string[] }>;
  request(url: string, method: "POST", body: unknown): unknown;
  alternate(
    targets: Array<{ target: unknown; pid?: number }>,
  ): Promise<{ floor: unknown; results: unknown[] }>;
  throughputRow(name: string, store: string, r: unknown, floor: unknown, pid?: number): MeasuredRow;
  figureRow(name: string, store: string, figures: { extra: Record<string, number> }): MeasuredRow;
  add(row: MeasuredRow): MeasuredRow;
  addTarget(target: { target: string; want: string; measured: string; met: boolean | null }): void;
  tracedAtTenPercent(url: string): Record<string, string>;
}

interface HelperProc {
  child: { pid?: number };
  url: string;
}

interface MeasuredRow {
  case: string;
  cpuUsPerReq: number | null;
  rssMb: number | null;
  extra?: Record<string, number>;
}

interface SinkStats {
  logstashPort: number;
  received: Record<string, { requests?: number; connections?: number; bytes: number }>;
}

/** Most CPU per request one healthy sink may add over none, µs. */
const SINK_BUDGET_US = 15;
/** `LOG_CALLER=true`: most CPU per request its caller fields may add, µs. */
const LOG_CALLER_BUDGET_US = 20;
/** All four sinks together: at most this many times the CPU per request of none. */
const ALL_FOUR_FACTOR = 1.5;
/** All four sinks together: at most this much more RSS after the run than none, MiB. */
const ALL_FOUR_RSS_MIB = 60;

export async function telemetryCost(h: TelemetryHarness, logDir: string, pairOnly: boolean): Promise<void> {
  const sinks = await h.startNodeHelper("telemetry-sinks.mjs");
  const stats = async (): Promise<SinkStats> =>
    (await fetch(`${sinks.url}/stats`)).json() as Promise<SinkStats>;
  const { logstashPort } = await stats();
  const loki = { LOKI_URL: sinks.url };
  const logstash = { LOGSTASH_HOST: "127.0.0.1", LOGSTASH_PORT: String(logstashPort) };
  const otlp = h.tracedAtTenPercent(sinks.url);
  // No SENTRY_TRACES_SAMPLE_RATE: the default is what an operator who only sets the DSN gets.
  const sentry = { SENTRY_DSN: `${sinks.url.replace("http://", "http://publickey@")}/1` };
  const variants: Array<{ label: string; env: Record<string, string> }> = [
    { label: "none", env: {} },
    { label: "Loki only", env: loki },
    { label: "Logstash only", env: logstash },
    { label: "OTLP only, 10 % sampled", env: otlp },
    { label: "Sentry only, default sample rate", env: sentry },
    { label: "all four", env: { ...loki, ...logstash, ...otlp, ...sentry } },
    { label: "no sinks, LOG_CALLER=true", env: { LOG_CALLER: "true" } },
  ].filter((v) => !pairOnly || v.label === "none" || v.label === "all four");

  // As every case runs: request logging at INFO to a file, metrics on. Each server has its own file.
  const servers: Array<HelperProc & { close(): Promise<void> }> = [];
  for (const [i, v] of variants.entries()) {
    servers.push(
      await h.startI3xd(`telemetry-${i}`, {
        LOG_LEVEL: "info",
        LOG_FILE: path.join(logDir, `telemetry-${i}.log`),
        I3XD_METRICS: "true",
        ...v.env,
      }),
    );
  }
  const plant = await h.discover(servers[0].url);
  const body = { elementIds: plant.ids };
  const { floor, results } = await h.alternate(
    servers.map((s) => ({ target: h.request(`${s.url}/v1/objects/value`, "POST", body), pid: s.child.pid })),
  );
  const received = (await stats()).received;
  const rows = variants.map((v, i) => {
    const row = h.throughputRow(
      `${h.valueCase}, telemetry: ${v.label}`,
      "sqlite",
      results[i],
      floor,
      servers[i].child.pid,
    );
    return h.add(row);
  });
  // Proof that every sink was really shipping during the run.
  h.add(
    h.figureRow("telemetry receivers, bytes received", "-", {
      extra: {
        otlp: received.otlp.bytes,
        sentry: received.sentry.bytes,
        loki: received.loki.bytes,
        logstash: received.logstash.bytes,
      },
    }),
  );
  for (const s of servers) await s.close();

  const none = rows[0];
  if (none.cpuUsPerReq === null) return;
  for (const [i, row] of rows.entries()) {
    if (i === 0 || row.cpuUsPerReq === null) continue;
    const added = row.cpuUsPerReq - none.cpuUsPerReq;
    if (variants[i].label === "all four") {
      const factor = row.cpuUsPerReq / none.cpuUsPerReq;
      h.addTarget({
        target: "telemetry: all four sinks, CPU per request (also issue 15's shipping on / off)",
        want: `<= ${ALL_FOUR_FACTOR} x none`,
        measured: `${factor.toFixed(2)} x (${row.cpuUsPerReq} vs ${none.cpuUsPerReq} µs)`,
        met: factor <= ALL_FOUR_FACTOR,
      });
      if (row.rssMb !== null && none.rssMb !== null) {
        const more = row.rssMb - none.rssMb;
        h.addTarget({
          target: "telemetry: all four sinks, RSS after the run",
          want: `<= none + ${ALL_FOUR_RSS_MIB} MiB`,
          measured: `+${more.toFixed(1)} MiB (${row.rssMb} vs ${none.rssMb})`,
          met: more <= ALL_FOUR_RSS_MIB,
        });
      }
    } else {
      const budget = variants[i].env.LOG_CALLER ? LOG_CALLER_BUDGET_US : SINK_BUDGET_US;
      h.addTarget({
        target: `telemetry: ${variants[i].label}, CPU per request over none`,
        want: `<= +${budget} µs`,
        measured: `${added >= 0 ? "+" : ""}${added} µs`,
        met: added <= budget,
      });
    }
  }
}
