import { existsSync } from "node:fs";
import { type Browser, type BrowserContextOptions, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";

/** Debian's Chromium (installed by .ci/services.sh); playwright-core drives it, no browser is downloaded. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Starts headless Chromium. Fails (never skips) when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `no Chromium at ${CHROMIUM_PATH}: install Debian's chromium package (.ci/services.sh does)`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export interface RecordedPage {
  page: Page;
  /** Console errors, uncaught exceptions and CSP violations of the page, in order (a blocked CORS call logs one). */
  consoleErrors: string[];
  /** Requests to any origin other than the one the page was first opened on. */
  requestsLeavingOrigin: string[];
  /** Closes the page with its own browser context. */
  close(): Promise<void>;
}

/**
 * A page in a fresh browser context (no cache, cookies or cached CORS preflights shared with other pages,
 * so each page sees the server as a first visit does) that records console errors and every request
 * leaving the origin of its first navigation (blob: and data: URLs the page makes itself do not leave the
 * browser).
 */
export async function openPage(browser: Browser, options: BrowserContextOptions = {}): Promise<RecordedPage> {
  const context = await browser.newContext(options);
  // Chromium logs blocked content on its own, but a listener also catches what it reports only as an event.
  await context.addInitScript({
    content: `document.addEventListener("securitypolicyviolation", (e) =>
      console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline content")));`,
  });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const requestsLeavingOrigin: string[] = [];
  let origin: string | undefined;
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(`${err.name}: ${err.message}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol === "data:" || url.protocol === "blob:") return;
    if (origin === undefined && request.isNavigationRequest()) origin = url.origin;
    else if (url.origin !== origin) requestsLeavingOrigin.push(request.url());
  });
  return { page, consoleErrors, requestsLeavingOrigin, close: () => context.close() };
}

/** One browser shared by the tests of a file: launched before the first test, closed after the last. */
export function useBrowser(): { readonly browser: Browser; newPage(): Promise<RecordedPage> } {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });
  const launched = (): Browser => {
    if (browser === undefined) throw new Error("the browser has not been launched yet");
    return browser;
  };
  return {
    get browser() {
      return launched();
    },
    newPage: () => openPage(launched()),
  };
}
