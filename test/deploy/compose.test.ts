import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { run, toolsFor } from "../ops/tools.js";
import { knownVariable, ROOT, readRepoFile } from "./files.js";

interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  command?: string[];
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}

const DEPLOY = path.join(ROOT, "deploy");
const compose = parse(readRepoFile("deploy/compose.yaml"), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const names = Object.keys(services);

/** Bind mounts of a service: host path (resolved against deploy/, as compose does) and container path. */
function binds(service: Service): Array<{ source: string; target: string }> {
  return (service.volumes ?? [])
    .map((v) => v.split(":"))
    .filter(([source]) => source.startsWith("."))
    .map(([source, target]) => ({ source: path.resolve(DEPLOY, source), target }));
}

/** The bind mount of a service that lands at `target` (a file, or a directory holding it). */
function mountedAt(service: string, target: string): string {
  const mount = binds(services[service]).find(
    (b) => target === b.target || target.startsWith(`${b.target}/`),
  );
  if (!mount) throw new Error(`${service} mounts nothing at ${target}`);
  return path.join(mount.source, path.relative(mount.target, target));
}

/** Container ports a service publishes (the right-hand side of its `ports`). */
function publishedPorts(service: string): number[] {
  return (services[service].ports ?? []).map((p) => Number(p.split(":").at(-1)));
}

function hostAndPort(url: string): { host: string; port: number } {
  const u = new URL(url.includes("://") ? url : `tcp://${url}`);
  return { host: u.hostname, port: Number(u.port) };
}

const i3xdEnv = services.i3xd.environment ?? {};
const imagePort = Number(/I3XD_PORT=(\d+)/.exec(readRepoFile("Dockerfile"))?.[1]);

describe("deploy/compose.yaml", () => {
  it("has i3xd (2 replicas on PostgreSQL behind a proxy, one on SQLite in a profile) and the back end", () => {
    for (const name of [
      "i3xd",
      "i3xd-sqlite",
      "proxy",
      "postgres",
      "prometheus",
      "alertmanager",
      "grafana",
      "loki",
      "otel-collector",
      "jaeger",
    ])
      expect(names).toContain(name);
    expect(services.i3xd.deploy?.replicas).toBe(2);
    expect(hostAndPort(i3xdEnv.I3XD_STORE_URL.replace(/\$\{[^}]*\}/g, "x")).host).toBe("postgres");
    expect(services["i3xd-sqlite"].profiles).toEqual(["sqlite"]);
    expect(services["i3xd-sqlite"].environment?.I3XD_STORE_URL).toBeUndefined();
  });

  it("pins every image to a version, and builds i3xd as the package's version", () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.image, name).toMatch(/^[\w./-]+:v?\d+(\.\d+)+([-\w.]*)?$/);
    }
    const { version } = JSON.parse(readRepoFile("package.json")) as { version: string };
    expect(services.i3xd.image).toBe(`i3xd:${version}`);
  });

  it("mounts only paths that exist, and the monitoring files are the ones under ops/", () => {
    for (const name of names)
      for (const { source } of binds(services[name]))
        expect(existsSync(source), `${name}: ${source}`).toBe(true);
    const ops = (p: string) => path.join(ROOT, "ops", p);
    expect(mountedAt("prometheus", "/etc/prometheus/alerts.yml")).toBe(ops("prometheus/alerts.yml"));
    expect(mountedAt("alertmanager", "/etc/alertmanager/alertmanager.yml")).toBe(
      ops("alertmanager/alertmanager.yml"),
    );
    expect(mountedAt("grafana", "/etc/grafana/provisioning/dashboards/i3xd.yml")).toBe(
      ops("grafana/provisioning/dashboards/i3xd.yml"),
    );
    // The dashboard provider reads the directory the dashboards are mounted at.
    const provider = parse(readRepoFile("ops/grafana/provisioning/dashboards/i3xd.yml")) as {
      providers: Array<{ options: { path: string } }>;
    };
    const dashboards = mountedAt("grafana", `${provider.providers[0].options.path}/i3xd.json`);
    expect(dashboards).toBe(ops("grafana/dashboards/i3xd.json"));
    expect(statSync(dashboards).isFile()).toBe(true);
  });

  it("sets only variables the server reads (the configuration table)", () => {
    for (const name of ["i3xd", "i3xd-sqlite"])
      for (const variable of Object.keys(services[name].environment ?? {}))
        expect(knownVariable(variable), `${name}: ${variable}`).toBe(true);
  });

  it("gives i3xd longer to stop than its shutdown timeout", () => {
    const grace = Number.parseInt(services.i3xd.stop_grace_period ?? "10", 10) * 1000;
    const timeout = Number(i3xdEnv.I3XD_SHUTDOWN_TIMEOUT_MS ?? 25_000);
    expect(grace).toBeGreaterThan(timeout);
  });

  describe("the names and ports the configurations use agree", () => {
    const prometheusConfig = parse(readFileAt("prometheus", "/etc/prometheus/prometheus.yml")) as {
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
      scrape_configs: Array<{
        job_name: string;
        dns_sd_configs?: Array<{ names: string[]; port: number }>;
      }>;
    };

    it("Prometheus scrapes every i3xd service on the metrics port and alerts to Alertmanager's", () => {
      const job = prometheusConfig.scrape_configs.find((j) => j.job_name === "i3xd");
      const sd = job?.dns_sd_configs?.[0];
      expect(sd?.names.sort()).toEqual(names.filter((n) => n.startsWith("i3xd")).sort());
      expect(sd?.port).toBe(Number(i3xdEnv.I3XD_METRICS_PORT));
      const [target] = prometheusConfig.alerting.alertmanagers[0].static_configs[0].targets;
      const am = hostAndPort(target);
      expect(am.host).toBe("alertmanager");
      expect(publishedPorts("alertmanager")).toContain(am.port);
    });

    it("i3xd's traces go to the collector's OTLP/HTTP receiver, and on to Jaeger", () => {
      const collector = parse(readFileAt("otel-collector", "/etc/otelcol-contrib/config.yaml")) as {
        receivers: { otlp: { protocols: { http: { endpoint: string } } } };
        exporters: Record<string, { endpoint: string }>;
        service: { pipelines: { traces: { receivers: string[]; exporters: string[] } } };
      };
      const otlp = hostAndPort(i3xdEnv.OTEL_EXPORTER_OTLP_ENDPOINT);
      expect(otlp.host).toBe("otel-collector");
      expect(hostAndPort(collector.receivers.otlp.protocols.http.endpoint).port).toBe(otlp.port);
      for (const exporter of collector.service.pipelines.traces.exporters)
        expect(names).toContain(hostAndPort(collector.exporters[exporter].endpoint).host);
    });

    it("i3xd ships logs to the Loki service; Grafana's data sources name services and their ports", () => {
      const loki = hostAndPort(i3xdEnv.LOKI_URL);
      expect(loki.host).toBe("loki");
      expect(publishedPorts("loki")).toContain(loki.port);
      const sources = parse(
        readFileAt("grafana", "/etc/grafana/provisioning/datasources/datasources.yml"),
      ) as {
        datasources: Array<{ type: string; uid: string; url: string }>;
      };
      expect(sources.datasources.map((d) => d.type).sort()).toEqual(["jaeger", "loki", "prometheus"]);
      for (const source of sources.datasources) {
        const { host, port } = hostAndPort(source.url);
        expect(names, source.url).toContain(host);
        expect(publishedPorts(host), source.url).toContain(port);
      }
      // The dashboard's data source variable defaults to this uid.
      expect(sources.datasources.find((d) => d.type === "prometheus")?.uid).toBe("prometheus");
    });

    it("the proxy listens on its published port and forwards to the i3xd service on the image's port", () => {
      const nginx = readFileAt("proxy", "/etc/nginx/nginx.conf");
      const listen = Number(/^\s*listen\s+(\d+);/m.exec(nginx)?.[1]);
      expect(publishedPorts("proxy")).toContain(listen);
      const upstream = /^\s*server\s+([\w-]+):(\d+);/m.exec(nginx);
      expect(upstream?.[1]).toBe("i3xd");
      expect(Number(upstream?.[2])).toBe(imagePort);
      expect(publishedPorts("i3xd-sqlite")).toContain(imagePort);
    });

    it("the store URL names the database, user and port PostgreSQL is set up with", () => {
      const url = new URL(i3xdEnv.I3XD_STORE_URL.replace(/\$\{[^}]*\}/g, "x"));
      const pg = services.postgres.environment ?? {};
      expect(url.username).toBe(pg.POSTGRES_USER);
      expect(url.pathname).toBe(`/${pg.POSTGRES_DB}`);
      expect(url.port).toBe("5432");
    });
  });

  const tools = toolsFor("promtool", "amtool");
  (tools.available ? describe : describe.skip)("the mounted configurations pass their own tools", () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "i3xd-compose-"));
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));

    it("promtool check config on Prometheus's files as the container sees them", async () => {
      // Every file mounted under /etc/prometheus, laid out as there, so rule_files resolves as it will.
      for (const { source, target } of binds(services.prometheus))
        if (target.startsWith("/etc/prometheus/"))
          copyFileSync(source, path.join(scratch, path.basename(target)));
      const r = await run(tools.require("promtool"), [
        "check",
        "config",
        path.join(scratch, "prometheus.yml"),
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/SUCCESS: \d+ rules found/);
    });

    it("amtool check-config on Alertmanager's mounted configuration", async () => {
      const config = mountedAt("alertmanager", "/etc/alertmanager/alertmanager.yml");
      const r = await run(tools.require("amtool"), ["check-config", config]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });
  });
});

function readFileAt(service: string, target: string): string {
  return readRepoFile(path.relative(ROOT, mountedAt(service, target)));
}
