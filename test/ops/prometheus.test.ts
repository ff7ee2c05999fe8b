import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { DataType, StatusCodes, Variant } from "node-opcua-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { connectorKinds } from "../../src/connectors/kinds.js";
import { eventually, runningSource, TEST_KIND, testSourceKind } from "../connectors/test-source.js";
import { type PlantServer, startPlantServer } from "../helpers/opcua-server.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { BROKER_URL, uniqueGroup } from "../helpers/sparkplug-edge-node.js";
import {
  ALERTS_FILE,
  type ChildServer,
  dashboardQueries,
  freePort,
  grafanaRegexEscape,
  type Json,
  loadDashboard,
  OPS,
  startChild,
  substitute,
  toolsFor,
  waitFor,
  writeFile,
} from "./tools.js";
import { faultRound, openSubscription, trafficRound } from "./traffic.js";

const tools = toolsFor("prometheus", "alertmanager");

interface Notification {
  receiver: string;
  status: string;
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

/** A stand-in for the pager and chat webhooks: records what Alertmanager posts, by path. */
async function startWebhookReceiver(): Promise<{
  url: string;
  received: Map<string, Notification[]>;
  server: Server;
}> {
  const received = new Map<string, Notification[]>();
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const list = received.get(req.url ?? "") ?? [];
      list.push(JSON.parse(body));
      received.set(req.url ?? "", list);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, received, server };
}

(tools.available ? describe : describe.skip)(
  "dashboard and alerts on a real Prometheus scraping a real i3xd",
  () => {
    const dir = mkdtempSync(path.join(tmpdir(), "i3xd-prometheus-"));
    let server: TestServer;
    let prometheus: ChildServer | undefined;
    let plant: PlantServer | undefined;
    let alertmanager: ChildServer | undefined;
    let webhooks: Awaited<ReturnType<typeof startWebhookReceiver>> | undefined;
    let target: string;

    const query = async (expr: string): Promise<Json> => {
      const res = await fetch(`${prometheus?.url}/api/v1/query`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ query: expr }),
      });
      return res.json();
    };
    const api = async (p: string): Promise<Json> => (await fetch(`${prometheus?.url}${p}`)).json();

    beforeAll(async () => {
      // LOKI_URL points at a closed port: the shipping sink exists (its telemetry series are exported) and
      // fails, as it would with Loki down.
      const deadPort = await freePort();
      // A connector, so the Connectors row has series: the framework's test-only source (see
      // test/connectors/test-source.ts), which feeds one point; and a Sparkplug host on the local broker
      // (a group of its own, silent) for the Sparkplug panels; and an OPC UA server in this process, one of
      // whose variables reports a Bad status, for the OPC UA panels.
      connectorKinds.register(testSourceKind);
      plant = await startPlantServer({ pkiDir: path.join(dir, "opcua-pki") });
      const connectors = writeFile(
        dir,
        "connectors.yaml",
        `connectors:\n  - { name: ops, kind: ${TEST_KIND}, prefix: ops }\n` +
          `  - { name: ops-spb, kind: sparkplug, url: "${BROKER_URL}", groups: [${uniqueGroup("ops")}] }\n` +
          `  - { name: ops-opcua, kind: opcua, endpointUrl: "${plant.endpointUrl}" }\n`,
      );
      server = await startTestServer({
        I3XD_TEST_FAULTS: "1",
        LOKI_URL: `http://127.0.0.1:${deadPort}`,
        TELEMETRY_FLUSH_TIMEOUT_MS: "100",
        I3XD_CONNECTORS_FILE: connectors,
      });
      target = new URL(server.url).host;
      const source = await eventually(() => runningSource("ops", server.dataDir));
      source.emit([{ elementId: "ops.e0", value: 1, quality: "Good", tsUs: Date.now() * 1000 }]);
      await eventually(async () => {
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        return /^opcua_monitored_items\{[^}]*\} [1-9]/m.test(metrics);
      }, 20_000);
      const bad = new Variant({ dataType: DataType.Double, value: 0 });
      plant.set("Speed", bad, StatusCodes.BadSensorFailure);

      // Alertmanager with the shipped routing; only the webhook URLs and the waits are changed.
      webhooks = await startWebhookReceiver();
      const am: Json = parse(readFileSync(path.join(OPS, "alertmanager/alertmanager.yml"), "utf8"));
      am.route.group_wait = "0s";
      am.route.group_interval = "1s";
      for (const r of am.receivers) r.webhook_configs[0].url = `${webhooks.url}/${r.name}`;
      const amPort = await freePort();
      alertmanager = await startChild(
        tools.require("alertmanager"),
        [
          `--config.file=${writeFile(dir, "alertmanager.yml", stringify(am))}`,
          `--storage.path=${path.join(dir, "am-data")}`,
          `--web.listen-address=127.0.0.1:${amPort}`,
          // No gossip cluster: it would bind port 9094 on all interfaces.
          "--cluster.listen-address=",
          "--log.level=warn",
        ],
        `http://127.0.0.1:${amPort}`,
        "/-/ready",
        dir,
      );

      // The shipped rules with every `for` shortened to 1 s, so the alert fires within the test.
      const rules: Json = parse(readFileSync(ALERTS_FILE, "utf8"));
      for (const g of rules.groups) for (const r of g.rules) if (r.for !== undefined) r.for = "1s";
      writeFile(dir, "alerts.yml", stringify(rules));
      const config = {
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        rule_files: ["alerts.yml"],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${amPort}`] }] }] },
        scrape_configs: [
          { job_name: "i3xd", static_configs: [{ targets: [target], labels: { env: "test" } }] },
        ],
      };
      const promPort = await freePort();
      prometheus = await startChild(
        tools.require("prometheus"),
        [
          `--config.file=${writeFile(dir, "prometheus.yml", stringify(config))}`,
          `--storage.tsdb.path=${path.join(dir, "prom-data")}`,
          `--web.listen-address=127.0.0.1:${promPort}`,
          "--log.level=warn",
        ],
        `http://127.0.0.1:${promPort}`,
        "/-/ready",
        dir,
      );

      await waitFor(
        "the first successful scrape",
        async () => ((await query('up{job="i3xd"} == 1')).data.result.length > 0 ? true : undefined),
        15_000,
      );
      await openSubscription(server.url);
      // A few seconds of ordinary traffic, so rates over it have several samples.
      const until = Date.now() + 5000;
      let rounds = 0;
      while (Date.now() < until) {
        await trafficRound(server.url);
        rounds++;
        await new Promise((r) => setTimeout(r, 50));
      }
      // Until Prometheus has scraped all of it.
      const want = rounds * 9;
      await waitFor(
        "Prometheus to have scraped the traffic",
        async () => {
          const r = await query(`sum(entity_requests_total{job="i3xd", endpoint!~"/metrics|/health/.*"})`);
          return Number(r.data.result[0]?.value[1] ?? 0) >= want ? true : undefined;
        },
        10_000,
      );
    }, 60_000);

    afterAll(async () => {
      await prometheus?.stop();
      await alertmanager?.stop();
      await new Promise((r) => (webhooks ? webhooks.server.close(r) : r(undefined)));
      await server?.close();
      await plant?.stop();
      connectorKinds.unregister(TEST_KIND);
      rmSync(dir, { recursive: true, force: true });
    });

    it("the instance variable's query finds the target", async () => {
      const r = await api(
        `/api/v1/label/instance/values?${new URLSearchParams({ "match[]": 'up{job="i3xd"}' })}`,
      );
      expect(r.data).toEqual([target]);
    });

    it("every dashboard expression evaluates, and every panel shows data", async () => {
      const vars = {
        instance: grafanaRegexEscape(target),
        __rate_interval: "1m",
        __interval: "15s",
        __range: "5m",
      };
      const failures: string[] = [];
      const empty: string[] = [];
      for (const q of dashboardQueries(loadDashboard())) {
        const expr = substitute(q.expr, vars);
        const r = await query(expr);
        if (r.status !== "success") failures.push(`${q.panel} (${q.refId}): ${r.error}\n${expr}`);
        else if (r.data.result.length === 0 && q.panelType !== "annotation")
          empty.push(`${q.panel} (${q.refId})`);
      }
      expect(failures).toEqual([]);
      expect(empty).toEqual([]);
    });

    it("the core panels show the traffic that was driven", async () => {
      const byTitle = new Map(
        dashboardQueries(loadDashboard()).map((q) => [`${q.panel}/${q.refId}`, q.expr]),
      );
      const vars = { instance: grafanaRegexEscape(target), __rate_interval: "1m" };
      const values = async (key: string) => {
        const expr = byTitle.get(key);
        if (expr === undefined) throw new Error(`no panel query ${key}`);
        const r = await query(substitute(expr, vars));
        return new Map<string, number>(
          r.data.result.map((s: Json) => [JSON.stringify(s.metric), Number(s.value[1])] as [string, number]),
        );
      };
      const one = async (key: string) => [...(await values(key)).values()][0];

      expect(await one("API request rate/A")).toBeGreaterThan(0);
      expect(await one("5xx ratio/A")).toBe(0);
      expect(await one("p95 latency/A")).toBeGreaterThan(0);
      expect(await one("Store connections/A")).toBeGreaterThanOrEqual(1);
      const endpoints = [...(await values("Request rate by endpoint/A")).keys()].map(
        (k) => JSON.parse(k).endpoint,
      );
      expect(endpoints).toEqual(expect.arrayContaining(["/objects/value", "/namespaces", "unmatched"]));
      const written = await values("Data points written by type/A");
      expect(Math.max(...written.values())).toBeGreaterThan(0);
      const hitRatio = await values("Cache hit ratio by cache/A");
      expect(hitRatio.get(JSON.stringify({ cache_type: "object" }))).toBeGreaterThan(0);
      expect(await one("Active subscriptions and SSE streams/A")).toBeGreaterThanOrEqual(1);
      expect(await one("Queued subscription updates/A")).toBeGreaterThan(0);
      expect(await one("Connectors up/A")).toBe(1);
      const outcomes = [...(await values("Connector messages by outcome/A")).keys()].map(
        (k) => JSON.parse(k).outcome,
      );
      expect(outcomes).toEqual(expect.arrayContaining(["received", "stored", "dropped"]));
    });

    it("every alert rule is loaded, evaluates without error and stays silent while the server is healthy", async () => {
      const shipped: string[] = parse(readFileSync(ALERTS_FILE, "utf8"))
        .groups.flatMap((g: Json) => g.rules)
        .map((r: Json) => r.alert);
      const rules: Json[] = await waitFor(
        "every rule to be evaluated",
        async () => {
          const list: Json[] = (await api("/api/v1/rules?type=alert")).data.groups.flatMap(
            (g: Json) => g.rules,
          );
          return list.length > 0 && list.every((r) => r.health !== "unknown") ? list : undefined;
        },
        10_000,
      );
      expect(rules.map((r) => r.name).sort()).toEqual([...shipped].sort());
      for (const r of rules) {
        expect(r.health, `${r.name}: ${r.lastError}`).toBe("ok");
        const result = await query(r.query);
        expect(result.status, `${r.name}: ${result.error}`).toBe("success");
      }
      const firing = (await api("/api/v1/alerts")).data.alerts.map((a: Json) => a.labels.alertname);
      // Not asserted for the load-dependent ones (latency, event-loop lag, a scrape timing out on a busy
      // machine): with `for: 1s` they could fire for reasons that are not the rules' fault.
      expect(firing).not.toContain("HighErrorRate");
      expect(firing).not.toContain("DatabaseConnectionIssue");
    });

    it("a 5xx share above 5% makes HighErrorRate fire and pages through Alertmanager", async () => {
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        await Promise.all([trafficRound(server.url), faultRound(server.url, 10)]);
        await new Promise((r) => setTimeout(r, 50));
      }
      const alert: Json = await waitFor(
        "HighErrorRate to fire",
        async () =>
          (await api("/api/v1/alerts")).data.alerts.find(
            (a: Json) => a.labels.alertname === "HighErrorRate" && a.state === "firing",
          ),
        40_000,
        500,
      );
      expect(alert.labels).toEqual({
        alertname: "HighErrorRate",
        severity: "critical",
        job: "i3xd",
        instance: target,
      });
      expect(alert.annotations.summary).toMatch(
        new RegExp(`^i3xd ${target}: \\d+(\\.\\d+)?% of API requests fail with 5xx$`),
      );
      expect(alert.annotations.runbook_url).toMatch(/docs\/runbooks\.md#high-error-rate$/);
      expect(Number(alert.value)).toBeGreaterThan(0.05);

      // Critical: the pager receiver gets it, the chat receiver does not.
      const page = await waitFor(
        "the pager webhook",
        async () =>
          webhooks?.received
            .get("/pager")
            ?.flatMap((n) => n.alerts)
            .find((a) => a.labels.alertname === "HighErrorRate" && a.status === "firing"),
        20_000,
      );
      expect(page.labels.instance).toBe(target);
      const chat = webhooks?.received.get("/chat")?.flatMap((n) => n.alerts) ?? [];
      expect(chat.map((a) => a.labels.alertname)).not.toContain("HighErrorRate");
    }, 90_000);
  },
);
