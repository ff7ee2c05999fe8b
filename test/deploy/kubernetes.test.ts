import { readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../../src/config.js";
import { configurationTableVariables, knownVariable, ROOT, readRepoFile } from "./files.js";

// biome-ignore lint/suspicious/noExplicitAny: manifests are arbitrary YAML read by assertions
type Manifest = Record<string, any>;

const DIR = "deploy/kubernetes";
const files = readdirSync(path.join(ROOT, DIR)).filter((f) => f.endsWith(".yaml"));
const manifests: Array<{ file: string; doc: Manifest }> = files.flatMap((file) =>
  parseAllDocuments(readRepoFile(`${DIR}/${file}`)).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join("; ")}`);
    return { file, doc: d.toJS() as Manifest };
  }),
);
const ofKind = (kind: string) => {
  const found = manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
  expect(found, kind).toHaveLength(1);
  return found[0];
};

const deployment = () => ofKind("Deployment");
const container = () => deployment().spec.template.spec.containers[0];
const configMap = () => ofKind("ConfigMap");
const secret = () => ofKind("Secret");

/** Kubernetes quantities in MiB (only the binary suffixes the manifests use). */
function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!m) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(m[1]) * (m[2] === "Gi" ? 1024 : 1);
}

/** The RSS figures docs/deploy.md gives under Resources, by row name. */
function rssFigures(): Map<string, number> {
  const doc = readRepoFile("docs/deploy.md");
  const section = doc.slice(doc.indexOf("### Resources"));
  const figures = new Map<string, number>();
  for (const m of section.matchAll(/^\|\s*([a-z][^|]*?)\s*\|\s*(\d+)\s*\|$/gm))
    figures.set(m[1], Number(m[2]));
  return figures;
}

describe("deploy/kubernetes", () => {
  it("parses, every manifest has a kind and a name, and kustomization lists all but the placeholder secret", () => {
    expect(manifests.length).toBeGreaterThanOrEqual(7);
    for (const { file, doc } of manifests) {
      expect(doc.kind, file).toBeTruthy();
      if (doc.kind !== "Kustomization") expect(doc.metadata?.name, file).toBe("i3xd");
    }
    const kustomization = ofKind("Kustomization");
    const listed = new Set(kustomization.resources as string[]);
    for (const file of files.filter((f) => f !== "kustomization.yaml" && f !== "secret.yaml"))
      expect(listed, file).toContain(file);
    expect(listed).not.toContain("secret.yaml");
  });

  it("every environment variable it sets is one the server reads (the configuration table)", () => {
    const table = configurationTableVariables();
    const named = [...Object.keys(configMap().data), ...Object.keys(secret().stringData)];
    for (const { doc } of manifests)
      for (const c of doc.spec?.template?.spec?.containers ?? [])
        for (const e of c.env ?? []) named.push(e.name);
    for (const name of named) expect(knownVariable(name, table), name).toBe(true);
  });

  it("the ConfigMap's and Secret's settings load as a valid configuration", () => {
    // Placeholders included: a typo in a value (a port, a duration) fails here, not at a rollout.
    const env = { ...configMap().data, ...secret().stringData, I3XD_DATA_DIR: "/data" };
    const config = loadConfig(env);
    expect(config.metricsPort).toBe(Number(configMap().data.I3XD_METRICS_PORT));
  });

  it("gives a pod longer to stop than the preStop pause and I3XD_SHUTDOWN_TIMEOUT_MS together", () => {
    const spec = deployment().spec.template.spec;
    const shutdownMs = Number(configMap().data.I3XD_SHUTDOWN_TIMEOUT_MS ?? 25_000);
    const pause = container().lifecycle?.preStop?.exec?.command;
    const pauseMs = pause?.[0] === "sleep" ? Number(pause[1]) * 1000 : 0;
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(shutdownMs + pauseMs);
  });

  it("runs several replicas, probes /health/live and /health/ready on the container's API port", () => {
    expect(deployment().spec.replicas).toBeGreaterThanOrEqual(2);
    const c = container();
    expect(c.livenessProbe.httpGet.path).toBe("/health/live");
    expect(c.readinessProbe.httpGet.path).toBe("/health/ready");
    const ports = new Map((c.ports as Manifest[]).map((p) => [p.name, p.containerPort]));
    const imagePort = Number(/I3XD_PORT=(\d+)/.exec(readRepoFile("Dockerfile"))?.[1]);
    expect(ports.get(c.readinessProbe.httpGet.port)).toBe(imagePort);
    expect(ports.get(c.livenessProbe.httpGet.port)).toBe(imagePort);
    expect(ports.get("metrics")).toBe(Number(configMap().data.I3XD_METRICS_PORT));
  });

  it("sizes memory from the RSS figures: the request above a ready server, the limit 25 % above loaded", () => {
    const figures = rssFigures();
    const ready = figures.get("ready");
    // Every figure but the ready one is a loaded server: the limit must hold the largest.
    const loaded = Math.max(...[...figures].filter(([row]) => row !== "ready").map(([, mib]) => mib));
    expect(ready).toBeGreaterThan(0);
    expect(loaded).toBeGreaterThan(0);
    const { requests, limits } = container().resources;
    expect(mebibytes(requests.memory)).toBeGreaterThanOrEqual(ready ?? Number.NaN);
    expect(mebibytes(limits.memory)).toBeGreaterThanOrEqual(1.25 * (loaded ?? Number.NaN));
    expect(requests.cpu).toBeTruthy();
  });

  it("the Service, ServiceMonitor and PodDisruptionBudget select the Deployment's pods and its ports", () => {
    const labels = deployment().spec.template.metadata.labels;
    const selects = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    const service = ofKind("Service");
    expect(selects(service.spec.selector)).toBe(true);
    const containerPorts = new Set((container().ports as Manifest[]).map((p) => p.name));
    for (const p of service.spec.ports) expect(containerPorts).toContain(p.targetPort);
    // The operator names the job after the Service; the alert rules select job="i3xd".
    expect(service.metadata.name).toBe("i3xd");
    const monitor = ofKind("ServiceMonitor");
    expect(
      Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v),
    ).toBe(true);
    const endpoint = monitor.spec.endpoints[0];
    expect((service.spec.ports as Manifest[]).map((p) => p.name)).toContain(endpoint.port);
    expect(endpoint.authorization.credentials).toEqual({
      name: secret().metadata.name,
      key: "I3XD_METRICS_TOKEN",
    });
    const pdb = ofKind("PodDisruptionBudget");
    expect(selects(pdb.spec.selector.matchLabels)).toBe(true);
    expect(pdb.spec.maxUnavailable ?? deployment().spec.replicas - pdb.spec.minAvailable).toBeLessThan(
      deployment().spec.replicas,
    );
  });

  it("keeps secrets out of the ConfigMap and the Secret's values placeholders", () => {
    expect(Object.keys(configMap().data).join(" ")).not.toMatch(/KEY|PASSWORD|TOKEN|SECRET|DSN|STORE_URL/);
    expect(Object.keys(secret().stringData).sort()).toEqual([
      "I3XD_API_KEYS",
      "I3XD_METRICS_TOKEN",
      "I3XD_STORE_URL",
    ]);
    expect(secret().stringData.I3XD_STORE_URL).toContain("CHANGE-ME");
  });
});
