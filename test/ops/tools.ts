import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (test/ops/ is two levels below it). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const OPS = path.join(ROOT, "ops");

export const DASHBOARD_FILE = path.join(OPS, "grafana/dashboards/i3xd.json");
export const ALERTS_FILE = path.join(OPS, "prometheus/alerts.yml");

/** Where each external tool may be called; the first name found on PATH wins. */
const TOOLS = {
  promtool: ["promtool"],
  prometheus: ["prometheus"],
  amtool: ["amtool"],
  // Debian names the server binary prometheus-alertmanager; upstream tarballs call it alertmanager.
  alertmanager: ["prometheus-alertmanager", "alertmanager"],
} as const;

export type Tool = keyof typeof TOOLS;

/** Full path of a tool, or undefined when it is not installed. */
export function findTool(tool: Tool): string | undefined {
  for (const name of TOOLS[tool]) {
    for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
      if (dir === "") continue;
      const candidate = path.join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

/**
 * The paths of the tools a test file needs. Outside CI, a missing tool skips the file (`available` is
 * false); under CI=true it never skips: `require` throws, so every test that needs the tool fails and names
 * what is missing.
 */
export function toolsFor(...tools: Tool[]) {
  const found = new Map(tools.map((t) => [t, findTool(t)] as const));
  const missing = tools.filter((t) => found.get(t) === undefined);
  const ci = process.env.CI === "true" || process.env.CI === "1";
  return {
    /** False only outside CI with a tool missing: the caller then uses `describe.skip`. */
    available: missing.length === 0 || ci,
    missing,
    require(tool: Tool): string {
      const p = found.get(tool);
      if (p === undefined) {
        throw new Error(
          `${TOOLS[tool].join(" or ")} not found on PATH: install Debian's prometheus and ` +
            "prometheus-alertmanager packages (bash .ci/services.sh does)",
        );
      }
      return p;
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects on a non-zero exit (the caller asserts on `code`). */
export function run(file: string, args: string[], options: { cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: options.cwd ?? ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(err);
      resolve({ code: err ? Number(err.code) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** A port that was free a moment ago, for servers that cannot be told to bind port 0 (Prometheus). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a value other than undefined, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ChildServer {
  url: string;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a long-running server process (Prometheus, Alertmanager) and waits until `readyPath` answers 200.
 * `stop()` sends SIGTERM to that one process, then SIGKILL if it has not exited within 5 s.
 */
export async function startChild(
  file: string,
  args: string[],
  url: string,
  readyPath: string,
  cwd: string,
): Promise<ChildServer> {
  const child: ChildProcess = spawn(file, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (chunk: Buffer) => {
    out += chunk.toString("utf8");
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exit;
    clearTimeout(timer);
  };
  try {
    await waitFor(
      `${path.basename(file)} at ${url}${readyPath}`,
      async () => {
        if (exited) throw new Error(`${path.basename(file)} exited: ${out.slice(-2000)}`);
        const res = await fetch(`${url}${readyPath}`);
        await res.arrayBuffer();
        return res.status === 200 ? true : undefined;
      },
      30_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, output: () => out, stop };
}

/** Writes a file below `dir`, creating directories as needed, and returns its path. */
export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

// Grafana dashboard ----------------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: the dashboard model is arbitrary JSON read by assertions
export type Json = any;

export function loadDashboard(): Json {
  return JSON.parse(readFileSync(DASHBOARD_FILE, "utf8"));
}

export interface PanelQuery {
  panel: string;
  panelType: string;
  refId: string;
  expr: string;
}

/** Every panel (rows included, and panels nested in collapsed rows). */
export function allPanels(dashboard: Json): Json[] {
  const out: Json[] = [];
  const walk = (panels: Json[] | undefined) => {
    for (const p of panels ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** Every PromQL expression of the dashboard: panel targets, then annotation queries. */
export function dashboardQueries(dashboard: Json): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const p of allPanels(dashboard)) {
    for (const t of p.targets ?? []) {
      out.push({ panel: p.title, panelType: p.type, refId: t.refId, expr: t.expr });
    }
  }
  for (const a of dashboard.annotations?.list ?? []) {
    if (typeof a.expr === "string") {
      out.push({ panel: `annotation: ${a.name}`, panelType: "annotation", refId: "-", expr: a.expr });
    }
  }
  return out;
}

/** Grafana's escaping of a variable value used inside a Prometheus regex matcher (`=~"$var"`). */
export function grafanaRegexEscape(value: string): string {
  return value.replace(/[\\^$*+?.()|{}[\]]/g, "\\\\$&");
}

/** Substitutes dashboard variables and Grafana's built-in intervals the way Grafana would. */
export function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a, b, c) => {
    const name = a ?? b ?? c;
    const value = vars[name];
    if (value === undefined) throw new Error(`no value for ${whole} in ${expr}`);
    return value;
  });
}

const PROMQL_KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "atan2",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression selects. Enough of PromQL for dashboards and rules: strings,
 * label matchers, grouping clauses, ranges and durations are removed first; what is left that looks like
 * an identifier and is neither a function call nor a keyword is a metric name.
 */
export function metricNames(expr: string): string[] {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  e = e.replace(/\{[^}]*\}/g, " ");
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  e = e.replace(/\[[^\]]*\]/g, " ");
  e = e.replace(/\$\{?\w+\}?/g, " ");
  const names = new Set<string>();
  for (const m of e.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call) continue;
    if (PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * Every metric name a `/metrics` text exposes: sample names, plus every family declared by `# TYPE`
 * (a labelled counter that has not counted yet exports no sample) with its histogram/summary series.
 */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type;
      names.add(name);
      if (kind === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
      if (kind === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (sample) names.add(sample[1]);
  }
  return names;
}

/** Series Prometheus itself creates for every target or rule; no exporter has them. */
export const PROMETHEUS_SYNTHETIC = new Set([
  "up",
  "ALERTS",
  "ALERTS_FOR_STATE",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling",
  "scrape_series_added",
]);
