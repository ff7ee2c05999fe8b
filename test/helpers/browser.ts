import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
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

export interface BrowserPage {
  page: Page;
  /** Console errors and uncaught exceptions of the page, in order (a blocked CORS call logs one). */
  consoleErrors: string[];
  /** Closes the page with its own browser context. */
  close(): Promise<void>;
}

/**
 * A page in a fresh browser context: no cache, cookies or cached CORS preflights shared with other
 * pages, so each page sees the server as a first visit does.
 */
export async function newPage(browser: Browser): Promise<BrowserPage> {
  const context: BrowserContext = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(error.message));
  return { page, consoleErrors, close: () => context.close() };
}

/** One browser shared by the tests of a file: launched before the first test, closed after the last. */
export function useBrowser(): { readonly browser: Browser; newPage(): Promise<BrowserPage> } {
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
    newPage: () => newPage(launched()),
  };
}
