import { type Browser, type BrowserContextOptions, chromium, type Page } from "playwright-core";

/** Debian's Chromium (`.ci/services.sh` installs it); playwright-core downloads no browser of its own. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

export interface RecordedPage {
  page: Page;
  /** Console messages of type error, and uncaught exceptions in the page. */
  consoleErrors: string[];
  /** Requests to any origin other than the one the page was first opened on. */
  requestsLeavingOrigin: string[];
  close(): Promise<void>;
}

/**
 * A page in its own context that records console errors and every request leaving the origin of its first
 * navigation (blob: and data: URLs the page makes itself do not leave the browser).
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
