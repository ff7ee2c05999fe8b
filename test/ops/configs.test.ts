import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ALERTS_FILE, type Json, OPS, ROOT } from "./tools.js";

const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");
const yamlOf = (file: string): Json => parse(read(file));

const RUNBOOK_BASE = "https://github.com/i3xd/i3xd/blob/main/docs/runbooks.md";

/** GitHub's heading anchors: lower case, punctuation other than `-` and `_` dropped, spaces to `-`. */
function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function alertRules(): Json[] {
  const doc = parse(readFileSync(ALERTS_FILE, "utf8"));
  return doc.groups.flatMap((g: Json) => g.rules).filter((r: Json) => r.alert !== undefined);
}

describe("alert rules (ops/prometheus/alerts.yml)", () => {
  const rules = alertRules();
  const anchors = new Set(
    read("docs/runbooks.md")
      .split("\n")
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => githubAnchor(l.replace(/^#+ /, ""))),
  );

  it("has the alerts the observability contract asks for", () => {
    const names = rules.map((r) => r.alert);
    for (const name of [
      "HighErrorRate",
      "SlowResponseTime",
      "DatabaseConnectionIssue",
      "LowCacheHitRate",
      "TargetDown",
      "SubscriptionBacklog",
      "DroppedUpdates",
      "TelemetryDropping",
    ]) {
      expect(names).toContain(name);
    }
    expect(new Set(names).size).toBe(names.length);
  });

  it.each(rules.map((r) => [r.alert, r]))(
    "%s has for, severity, summary, description and a runbook",
    (_, rule) => {
      expect(rule.for).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning"]).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toMatch(/\S/);
      expect(rule.annotations?.description).toMatch(/\S/);
      const url: string = rule.annotations?.runbook_url;
      expect(url.startsWith(`${RUNBOOK_BASE}#`)).toBe(true);
      // The anchor is a heading in docs/runbooks.md, and that section names the alert.
      const anchor = url.slice(RUNBOOK_BASE.length + 1);
      expect(anchors).toContain(anchor);
      expect(read("docs/runbooks.md")).toContain(`Alert \`${rule.alert}\``);
    },
  );

  it("computes the error ratio over all requests instead of alerting on an absolute 5xx rate", () => {
    const expr: string = rules.find((r) => r.alert === "HighErrorRate").expr;
    // 5xx requests divided by all requests (the denominator has no status filter).
    expect(expr).toMatch(
      /rate\(entity_requests_total\{[^}]*status=~"5\.\."[^}]*\}\[5m\]\)\)\s*\/\s*sum by \(job, instance\) \(rate\(entity_requests_total\{(?![^}]*status)[^}]*\}\[5m\]\)\)/,
    );
    // Guarded against a trickle of traffic where one failure is already a large share.
    expect(expr).toMatch(/and on \(job, instance\)/);
  });

  it("takes p95 from the rate of the buckets summed by le", () => {
    const expr: string = rules.find((r) => r.alert === "SlowResponseTime").expr;
    expect(expr.replace(/\s+/g, " ")).toMatch(
      /histogram_quantile\(0\.95, sum by \(job, instance, le\) \(rate\(request_duration_seconds_bucket\{[^}]*\}\[5m\]\)\)/,
    );
  });

  it("has a unit test that fires and one that stays silent for every alert", () => {
    const tests = yamlOf("ops/prometheus/alerts.test.yml");
    expect(tests.rule_files).toEqual(["alerts.yml"]);
    const fires = new Set<string>();
    const silent = new Set<string>();
    for (const t of tests.tests) {
      for (const c of t.alert_rule_test ?? []) {
        if (c.exp_alerts.length === 0) silent.add(c.alertname);
        for (const a of c.exp_alerts) {
          fires.add(c.alertname);
          // Exact annotations, not just labels.
          expect(Object.keys(a.exp_annotations ?? {}).sort()).toEqual([
            "description",
            "runbook_url",
            "summary",
          ]);
          expect(a.exp_labels.severity).toMatch(/^(critical|warning)$/);
        }
      }
    }
    for (const r of rules) {
      expect(fires, `no firing test for ${r.alert}`).toContain(r.alert);
      expect(silent, `no silent test for ${r.alert}`).toContain(r.alert);
    }
  });
});

describe("scrape and alerting configuration", () => {
  it("prometheus.yml scrapes several i3xd instances, loads the rules and sends alerts to Alertmanager", () => {
    const cfg = yamlOf("ops/prometheus/prometheus.yml");
    expect(cfg.rule_files).toContain("alerts.yml");
    expect(cfg.alerting.alertmanagers[0].static_configs[0].targets.length).toBeGreaterThan(0);
    const job = cfg.scrape_configs.find((j: Json) => j.job_name === "i3xd");
    expect(job.metrics_path).toBe("/metrics");
    const targets = job.static_configs.flatMap((s: Json) => s.targets);
    expect(targets.length).toBeGreaterThan(1);
    for (const s of job.static_configs) expect(Object.keys(s.labels ?? {})).not.toHaveLength(0);
  });

  it("alertmanager.yml routes critical to the pager, warning to chat, and inhibits warnings by criticals", () => {
    const cfg = yamlOf("ops/alertmanager/alertmanager.yml");
    const routeFor = (severity: string) =>
      cfg.route.routes.find((r: Json) => r.matchers.includes(`severity="${severity}"`))?.receiver;
    expect(routeFor("critical")).toBe("pager");
    expect(routeFor("warning")).toBe("chat");
    expect(cfg.route.group_by).toContain("instance");
    const inhibit = cfg.inhibit_rules.find((r: Json) => r.source_matchers.includes('severity="critical"'));
    expect(inhibit.target_matchers).toEqual(['severity="warning"']);
    expect(inhibit.equal).toContain("instance");
    for (const r of cfg.receivers) expect(r.webhook_configs[0].url).toMatch(/^https?:\/\//);
  });
});

describe("Grafana provisioning", () => {
  it("provisions a Prometheus data source", () => {
    const cfg = yamlOf("ops/grafana/provisioning/datasources/prometheus.yml");
    expect(cfg.apiVersion).toBe(1);
    expect(cfg.datasources[0].type).toBe("prometheus");
    expect(cfg.datasources[0].url).toMatch(/^https?:\/\//);
  });

  it("loads the dashboard from a file provider whose path the comments say how to mount", () => {
    const text = read("ops/grafana/provisioning/dashboards/i3xd.yml");
    const cfg = parse(text);
    const provider = cfg.providers[0];
    expect(provider.type).toBe("file");
    expect(text).toContain(`ops/grafana/dashboards:${provider.options.path}`);
    expect(JSON.parse(readFileSync(path.join(OPS, "grafana/dashboards/i3xd.json"), "utf8")).uid).toBeTruthy();
  });
});

describe("log pipelines", () => {
  const FIELDS = ["timestamp", "level", "logger", "message", "request_id", "user_id", "trace_id", "span_id"];

  it("promtail extracts the JSON fields, labels by level and application only", () => {
    const cfg = yamlOf("ops/loki/promtail.yml");
    const job = cfg.scrape_configs[0];
    const labels = job.static_configs[0].labels;
    expect(labels.application).toBe("i3xd");
    expect(labels.__path__).toMatch(/i3xd\.\*\.log$/);
    const stage = (name: string) => job.pipeline_stages.find((s: Json) => s[name] !== undefined)?.[name];
    expect(Object.keys(stage("json").expressions)).toEqual(expect.arrayContaining(FIELDS));
    expect(Object.keys(stage("labels"))).toEqual(["level"]);
    expect(stage("timestamp").source).toBe("timestamp");
    expect(stage("labeldrop")).toContain("filename");
  });

  it("the Alloy pipeline does the same", () => {
    const text = read("ops/loki/config.alloy");
    const json = /stage\.json \{\s*expressions = \{([^}]*)\}/.exec(text)?.[1] ?? "";
    for (const f of FIELDS) expect(json).toMatch(new RegExp(`\\b${f}\\s*= ""`));
    expect(text).toMatch(/stage\.labels \{\s*values = \{ level = "" \}/);
    expect(text).toContain('"application" = "i3xd"');
    expect(text).toMatch(/"__path__"\s*= "[^"]*i3xd\.\*\.log"/);
  });

  it("Logstash reads JSON lines over TCP and takes the event time from `timestamp`", () => {
    const text = read("ops/logstash/i3xd.conf");
    expect(text).toMatch(/tcp \{[^}]*port => 5000[^}]*codec => json_lines/s);
    expect(text).toMatch(/date \{\s*match => \["timestamp", "ISO8601"\]/);
    expect(text).toMatch(/elasticsearch \{\s*hosts =>/);
  });
});
