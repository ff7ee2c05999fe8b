// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_CSP } from "../../src/api/console.js";
import { createKey } from "../../src/security/keys.js";
import { launchBrowser, openPage, type RecordedPage } from "../helpers/browser.js";
import { postJson } from "../helpers/http.js";
import { makeTempDir, startTestServer, useTestServer } from "../helpers/server.js";

// Screenshots of the main views, for a reviewer (git-ignored).
const SHOTS = path.resolve("test-results/console");
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

let browser: Browser;

beforeAll(async () => {
  // The page under test is built from the current source, where `npm run build` puts it.
  await build({ configFile: path.resolve("console/vite.config.ts"), logLevel: "warn" });
  mkdirSync(SHOTS, { recursive: true });
  browser = await launchBrowser();
}, 120_000);
afterAll(async () => {
  await browser?.close();
});

async function visit(url: string, viewport = DESKTOP) {
  const recorded = await openPage(browser, { viewport, acceptDownloads: true });
  const response = await recorded.page.goto(url);
  return { ...recorded, response };
}

/** Every page ends without console errors and without a request to another origin. */
async function finish(recorded: RecordedPage, allowedErrors: RegExp[] = []) {
  const errors = recorded.consoleErrors.filter((e) => !allowedErrors.some((re) => re.test(e)));
  expect(errors).toEqual([]);
  expect(recorded.requestsLeavingOrigin).toEqual([]);
  await recorded.close();
}

const treeItem = (page: Page, id: string) => page.locator(`[role="treeitem"][data-element-id="${id}"]`);
const valueCard = (page: Page, id: string) => page.locator(`.object .vqt[data-element-id="${id}"]`).first();
// Expressions run in the page (strings: the test's own TypeScript has no DOM library).
const focusedId = (page: Page) =>
  page.evaluate<string | null>("document.activeElement?.getAttribute('data-element-id') ?? null");

/** The element's current value as the API serves it. */
async function storedValue(url: string, elementId: string): Promise<unknown> {
  const res = await postJson(url, "/v1/objects/value", { elementIds: [elementId] });
  return res.body.results[0].result.value;
}

/**
 * Polls until a live text in the page shows what the API serves for the element. The pump runs or stands
 * by the simulated tank level, so which state it shows depends on when the test runs.
 */
async function showsStoredValue(url: string, elementId: string, text: () => Promise<string | null>) {
  await expect
    .poll(async () => {
      const [shown, stored] = [await text(), await storedValue(url, elementId)];
      return shown === String(stored) ? "shows the stored value" : `shows ${shown}, stored ${stored}`;
    })
    .toBe("shows the stored value");
}

async function writeValue(url: string, elementId: string, value: unknown, quality = "Good", headers = {}) {
  const res = await postJson(
    url,
    "/v1/objects/value",
    { updates: [{ elementId, value: { value, quality } }] },
    { method: "PUT", headers },
  );
  expect(res.status).toBe(200);
  expect(res.body.success).toBe(true);
}

async function metric(url: string, name: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

describe("console, authentication off", () => {
  const t = useTestServer();

  it("serves the page at / with a strict CSP, its assets from /console/, and no key needed", async () => {
    const page = await fetch(`${t.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    const html = await page.text();
    // No inline script: every script element has a src on this origin.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc="\/console\/)[^>]*>/);
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${t.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    // The API keeps its own policy, Swagger UI its own page.
    const api = await fetch(`${t.url}/v1/namespaces`);
    expect(api.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
    const docs = await fetch(`${t.url}/docs/static/index.html`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain("swagger");
    const missing = await fetch(`${t.url}/console/assets/nothing.js`);
    expect(missing.status).toBe(404);
  });

  it("blocks inline styles and scripts in the page, and the recorder notices a violation", async () => {
    const rec = await visit(`${t.url}/`);
    await expect.poll(() => treeItem(rec.page, "site-1").isVisible()).toBe(true);
    expect(rec.consoleErrors).toEqual([]);
    await rec.page.evaluate(
      "document.head.append(Object.assign(document.createElement('style'), { textContent: 'body { color: red }' }))",
    );
    await expect.poll(() => rec.consoleErrors.some((e) => e.includes("style-src"))).toBe(true);
    await rec.close();
  });

  it("shows the object tree with pump-101's components, and the tree works from the keyboard", async () => {
    const rec = await visit(`${t.url}/`);
    expect(rec.response?.headers()["content-security-policy"]).toBe(CONSOLE_CSP);
    const { page } = rec;
    await expect.poll(() => treeItem(page, "site-1").isVisible()).toBe(true);

    // Tab into the tree: one tab stop, on the first root.
    for (let i = 0; i < 10 && (await focusedId(page)) !== "site-1"; i++) await page.keyboard.press("Tab");
    expect(await focusedId(page)).toBe("site-1");
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => treeItem(page, "site-1").getAttribute("aria-expanded")).toBe("true");
    await page.keyboard.press("ArrowDown");
    expect(await focusedId(page)).toBe("area-pumping");
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => treeItem(page, "area-pumping").getAttribute("aria-expanded")).toBe("true");
    for (let i = 0; i < 10 && (await focusedId(page)) !== "pump-101"; i++)
      await page.keyboard.press("ArrowDown");
    expect(await focusedId(page)).toBe("pump-101");
    await page.keyboard.press("ArrowRight");
    await expect.poll(() => treeItem(page, "pump-101").getAttribute("aria-expanded")).toBe("true");
    for (const component of ["pump-101-measurements", "pump-101-motor", "pump-101-state"]) {
      const item = treeItem(page, component);
      await expect.poll(() => item.isVisible()).toBe(true);
      expect(await item.locator(":scope > .row .tag").textContent()).toBe("component");
    }
    // Live values of visible objects appear in the tree.
    await showsStoredValue(t.url, "pump-101-state", () =>
      treeItem(page, "pump-101-state").locator(":scope > .row .badge").textContent(),
    );
    await page.screenshot({ path: path.join(SHOTS, "tree.png") });

    await page.keyboard.press("ArrowLeft");
    expect(await treeItem(page, "pump-101").getAttribute("aria-expanded")).toBe("false");
    expect(await treeItem(page, "pump-101-motor").isVisible()).toBe(false);
    await page.keyboard.press("ArrowLeft");
    expect(await focusedId(page)).toBe("area-pumping");
    await page.keyboard.press("End");
    expect(await focusedId(page)).not.toBe("area-pumping");
    await page.keyboard.press("Home");
    expect(await focusedId(page)).toBe("site-1");
    // Enter selects: the detail pane shows the object.
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator(".object-head h2").textContent()).toBe("Riverside Site");
    expect(page.url()).toMatch(/#o\/site-1$/);

    // The overview for the README (docs/console.png): the expanded tree, sensor-001 and its last hour.
    await treeItem(page, "sensor-001").locator(":scope > .row").click();
    const plot = page.locator(".history .plot");
    await expect
      .poll(async () => Number(await plot.getAttribute("data-points")), { timeout: 10_000 })
      .toBeGreaterThan(10);
    await expect
      .poll(() => page.locator('#health [data-field="requests"] .chip-value').textContent(), {
        timeout: 15_000,
      })
      .toMatch(/\/s$/);
    await page.screenshot({
      path: path.join(SHOTS, "overview.png"),
      clip: { x: 0, y: 0, width: 1280, height: 745 },
    });
    await finish(rec);
  });

  it("shows sensor-001's value with quality and time, its relationships, and a history plot with CSV", async () => {
    const rec = await visit(`${t.url}/#o/sensor-001`);
    const { page } = rec;
    const value = valueCard(page, "sensor-001");
    await expect.poll(() => value.locator(".value").textContent()).toMatch(/^-?\d+(\.\d+)?$/);
    expect(await value.locator(".quality").getAttribute("data-quality")).toBe("Good");
    expect(await value.locator("time").getAttribute("datetime")).toMatch(/Z$/);
    // Relationships both ways, as links.
    const rels = page.locator(".relationships");
    await expect.poll(() => rels.locator("dt").allTextContents()).toContain("HasParent");
    expect(await rels.locator('a[href="#o/area-pumping"]').count()).toBeGreaterThan(0);
    // Type and schema.
    expect(await page.locator('.object a[href="#t/temperature-type"]').count()).toBe(1);

    const plot = page.locator(".history .plot");
    await expect
      .poll(async () => Number(await plot.getAttribute("data-points")), { timeout: 10_000 })
      .toBeGreaterThan(10);
    expect(await plot.locator("canvas").count()).toBe(1);
    await page.screenshot({ path: path.join(SHOTS, "object.png"), fullPage: true });

    await page.getByRole("button", { name: "15 min" }).click();
    await expect
      .poll(() => page.getByRole("button", { name: "15 min" }).getAttribute("aria-pressed"))
      .toBe("true");
    await expect.poll(async () => Number(await plot.getAttribute("data-points"))).toBeGreaterThan(0);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download CSV" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("sensor-001-history.csv");
    const csv = readFileSync(await download.path(), "utf8")
      .trim()
      .split("\r\n");
    expect(csv[0]).toBe("timestamp,quality,value");
    expect(csv.length).toBeGreaterThan(2);
    expect(csv[1]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z,Good,-?\d/);

    // A custom range before any history: the server answers GoodNoData, listed (not plotted) as such.
    await page.locator('input[aria-label="From"]').fill("2001-01-01T00:00");
    await page.locator('input[aria-label="To"]').fill("2001-01-02T00:00");
    await page.getByRole("button", { name: "Show range" }).click();
    await expect.poll(() => page.locator(".history [role=status]").textContent()).toMatch(/ 1\/1\/2001, /);
    expect(
      await page.locator(".history table.values [data-quality]").first().getAttribute("data-quality"),
    ).toBe("GoodNoData");
    expect(await plot.getAttribute("data-points")).toBe("0");
    expect(await plot.locator("canvas").count()).toBe(0);
    await finish(rec);
  });

  it("plots a structured object's numeric fields and shows its components' values", async () => {
    const rec = await visit(`${t.url}/#o/pump-101-motor`);
    const { page } = rec;
    const plot = page.locator(".history .plot");
    await expect
      .poll(async () => Number(await plot.getAttribute("data-points")), { timeout: 10_000 })
      .toBeGreaterThan(10);
    // uPlot's legend names the series: the motor's numeric fields.
    expect(await page.locator(".u-legend").textContent()).toContain("current");
    await page.goto(`${t.url}/#o/pump-101`);
    await showsStoredValue(t.url, "pump-101-state", () =>
      valueCard(page, "pump-101-state").locator(".value").textContent(),
    );
    await finish(rec);
  });

  it("shows a value written through PUT /v1/objects/value within 2 s, and Bad or Uncertain quality visibly", async () => {
    const rec = await visit(`${t.url}/#o/sensor-001`);
    const { page } = rec;
    await expect.poll(() => page.locator("#live-status").getAttribute("data-state")).toBe("live");
    const value = valueCard(page, "sensor-001");
    await expect.poll(() => value.locator(".value").count()).toBe(1);

    await writeValue(t.url, "sensor-001", 123.25);
    await expect.poll(() => value.locator(".value").textContent(), { timeout: 2000 }).toBe("123.25");
    await writeValue(t.url, "sensor-001", 7.5, "Uncertain");
    await expect
      .poll(() => value.locator(".quality").getAttribute("data-quality"), { timeout: 2000 })
      .toBe("Uncertain");
    await writeValue(t.url, "sensor-001", null, "Bad");
    await expect
      .poll(() => value.locator(".quality").getAttribute("data-quality"), { timeout: 2000 })
      .toBe("Bad");
    // The three qualities look different (colour and style), not only by their text.
    expect(await value.locator(".quality").evaluate("(e) => getComputedStyle(e).backgroundColor")).not.toBe(
      "rgba(0, 0, 0, 0)",
    );
    await page.screenshot({ path: path.join(SHOTS, "bad-quality.png") });
    await writeValue(t.url, "sensor-001", 20.5);
    await finish(rec);
  });

  it("deletes its subscription when the page closes", async () => {
    const before = await metric(t.url, "subscriptions_active");
    const rec = await visit(`${t.url}/`);
    await expect.poll(() => rec.page.locator("#live-status").getAttribute("data-state")).toBe("live");
    expect(await metric(t.url, "subscriptions_active")).toBe(before + 1);
    await rec.page.close({ runBeforeUnload: true });
    await expect.poll(() => metric(t.url, "subscriptions_active"), { timeout: 5000 }).toBe(before);
    await finish(rec);
  });

  it("shows the server's health from /health/ready and /metrics, without connectors while none exist", async () => {
    const rec = await visit(`${t.url}/`);
    const { page } = rec;
    const chip = (field: string) => page.locator(`#health [data-field="${field}"] .chip-value`);
    await expect.poll(() => chip("server").textContent()).toBe("ready");
    expect(await chip("store").textContent()).toBe("sqlite");
    // Rates need two scrapes (5 s apart).
    await expect.poll(() => chip("requests").textContent(), { timeout: 15_000 }).toMatch(/^\d+\.\d\/s$/);
    expect(await chip("errors").textContent()).toMatch(/^(\d+(\.\d+)?%|—)$/);
    expect(await chip("p95").textContent()).toMatch(/^(\d+\.\d ms|—)$/);
    expect(await chip("cache hits").textContent()).toMatch(/^(\d+(\.\d+)?%|—)$/);
    expect(Number(await chip("subscriptions").textContent())).toBeGreaterThanOrEqual(1);
    expect(Number(await chip("SSE streams").textContent())).toBeGreaterThanOrEqual(1);
    expect(await chip("telemetry drops").textContent()).toBe("0");
    expect(Number(await chip("store connections").textContent())).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#health [data-field^="connector"]').count()).toBe(0);
    await finish(rec);
  });

  for (const [name, viewport] of [
    ["1280", DESKTOP],
    ["390", PHONE],
  ] as const) {
    it(`fits a ${name} px wide window`, async () => {
      const rec = await visit(`${t.url}/#o/pump-101`, viewport);
      const { page } = rec;
      await expect
        .poll(async () => Number(await page.locator(".history .plot").getAttribute("data-points")), {
          timeout: 10_000,
        })
        .toBeGreaterThan(0);
      await expect.poll(() => treeItem(page, "site-1").isVisible()).toBe(true);
      const overflow = await page.evaluate<number>(
        "document.documentElement.scrollWidth - window.innerWidth",
      );
      expect(overflow).toBeLessThanOrEqual(0);
      const canvas = await page.locator(".history canvas").boundingBox();
      expect(canvas?.width).toBeLessThanOrEqual(viewport.width);
      await page.screenshot({ path: path.join(SHOTS, `pump-101-${name}px.png`), fullPage: true });
      await finish(rec);
    });
  }
});

describe("console across a server restart", () => {
  const data = makeTempDir();
  afterAll(() => data.remove());

  it("reconnects its stream and shows values written after the restart", async () => {
    let server = await startTestServer({ I3XD_DATA_DIR: data.dir });
    const port = new URL(server.url).port;
    const url = server.url;
    const rec = await visit(`${url}/#o/sensor-001`);
    const { page } = rec;
    const status = page.locator("#live-status");
    try {
      await expect.poll(() => status.getAttribute("data-state")).toBe("live");
      await server.close("restart test");
      await expect.poll(() => status.getAttribute("data-state")).toBe("reconnecting");
      server = await startTestServer({ I3XD_DATA_DIR: data.dir, I3XD_PORT: port });
      await expect.poll(() => status.getAttribute("data-state"), { timeout: 15_000 }).toBe("live");
      await writeValue(url, "sensor-001", 321.5);
      await expect
        .poll(() => valueCard(page, "sensor-001").locator(".value").textContent(), { timeout: 2000 })
        .toBe("321.5");
    } finally {
      await server.close();
    }
    // While the server was down the page's requests failed; the browser reports those as console errors.
    await finish(rec, [/Failed to load resource|net::ERR_CONNECTION_REFUSED/]);
  });
});

describe("console with /metrics on its own port", () => {
  const t = useTestServer({ I3XD_METRICS_PORT: "0" });

  it("shows the metrics as not available and keeps the rest working", async () => {
    const rec = await visit(`${t.url}/`);
    const { page } = rec;
    await expect
      .poll(() => page.locator('#health [data-field="metrics"] .chip-value').textContent())
      .toBe("not available");
    expect(await page.locator('#health [data-field="server"] .chip-value').textContent()).toBe("ready");
    expect(await page.locator('#health [data-field="requests"]').count()).toBe(0);
    await expect.poll(() => treeItem(page, "site-1").isVisible()).toBe(true);
    // The browser reports the one 404 of /metrics on the API port as a console error.
    await finish(rec, [/Failed to load resource: the server responded with a status of 404/]);
  });
});

describe("console with API keys required", () => {
  const keys: Record<string, { token: string; entry: unknown }> = {};
  const METRICS_TOKEN = "metrics-token-0123456789";
  let url: string;
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined;

  beforeAll(async () => {
    keys.full = await createKey("console-full", ["read", "write"]);
    keys.sensors = await createKey("console-sensors", ["read"], ["sensor-"]);
    keys.writer = await createKey("console-writer", ["write"]);
    server = await startTestServer({
      I3XD_AUTH: "required",
      I3XD_API_KEYS: JSON.stringify(Object.values(keys).map((k) => k.entry)),
      I3XD_METRICS_TOKEN: METRICS_TOKEN,
    });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  // The browser reports each 401/403 answer it received as a console error; those are expected here.
  const expected401 = [/Failed to load resource: the server responded with a status of 40[13]/];

  async function enterKey(page: Page, token: string) {
    const dialog = page.locator("#key-dialog");
    await expect.poll(() => dialog.isVisible()).toBe(true);
    await page.locator("#key-input").fill(token);
    await page.getByRole("button", { name: "Use key" }).click();
  }

  it("serves the page and its assets without a key, and nothing else", async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(await page.text())?.[1];
    expect((await fetch(`${url}${script}`)).status).toBe(200);
    expect((await fetch(`${url}/v1/objects`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    expect((await fetch(`${url}/elsewhere`)).status).toBe(401);
  });

  it("asks for a key, says when it is wrong, then works with a good one; /metrics shows not available", async () => {
    const rec = await visit(`${url}/`);
    const { page } = rec;
    await expect
      .poll(() => page.locator("#key-message").textContent())
      .toBe("This server requires an API key.");
    await page.screenshot({ path: path.join(SHOTS, "key-dialog.png") });
    await enterKey(page, "i3xd_000000000000_wrong");
    await expect
      .poll(() => page.locator("#key-message").textContent())
      .toMatch(/^The key was not accepted \(Invalid API key\)/);
    await enterKey(page, keys.full.token);
    await expect.poll(() => treeItem(page, "site-1").isVisible()).toBe(true);
    expect(await page.evaluate("Object.keys(sessionStorage)")).toEqual(["i3xd.console.apiKey"]);
    expect(await page.evaluate("localStorage.length")).toBe(0);
    await expect
      .poll(() => page.locator('#health [data-field="metrics"] .chip-value').textContent())
      .toBe("not available");
    expect(await page.locator('#health [data-field="server"] .chip-value').textContent()).toBe("ready");
    // Live values work with the key as well.
    await page.goto(`${url}/#o/sensor-001`);
    await expect.poll(() => page.locator("#live-status").getAttribute("data-state")).toBe("live");
    await writeValue(url, "sensor-001", 55.5, "Good", { authorization: `Bearer ${keys.full.token}` });
    await expect
      .poll(() => valueCard(page, "sensor-001").locator(".value").textContent(), { timeout: 2000 })
      .toBe("55.5");
    await finish(rec, expected401);
  });

  it("shows a key restricted to element-id prefixes only what it may see", async () => {
    const rec = await visit(`${url}/`);
    const { page } = rec;
    await enterKey(page, keys.sensors.token);
    await expect.poll(() => treeItem(page, "sensor-001").isVisible()).toBe(true);
    expect(await treeItem(page, "sensor-002").isVisible()).toBe(true);
    expect(await page.locator('[role="treeitem"]').count()).toBe(2);
    expect(await treeItem(page, "pump-101").count()).toBe(0);
    await finish(rec, expected401);
  });

  it("says clearly when a key may not read", async () => {
    const rec = await visit(`${url}/`);
    const { page } = rec;
    await enterKey(page, keys.writer.token);
    await expect
      .poll(() => page.locator("#banner").textContent())
      .toMatch(/^Not allowed with this key: .*"read" scope/);
    expect(await page.locator("#banner").isVisible()).toBe(true);
    await finish(rec, expected401);
  });
});
