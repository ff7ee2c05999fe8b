import type { Config } from "../config.js";
import type { Keyring } from "../security/keys.js";
import type { Services } from "../services/index.js";
import type { Store } from "../store/store.js";

/**
 * What the composition root hands the HTTP layer. In its own module so the route modules and security
 * plugins can name it without importing `app.ts`, which imports them.
 */
export interface AppDeps {
  config: Config;
  store: Store;
  services: Services;
  /** API keys, when the runtime loaded them already (otherwise the app loads them from the config). */
  keyring?: Keyring;
}
