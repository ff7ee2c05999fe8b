import type { Config } from "../config.js";
import type { ChangeFeed } from "../domain/changes.js";
import type { CachedStore } from "../store/decorators/cached.js";
import { directCache } from "../store/decorators/traced.js";
import type { Store } from "../store/store.js";
import { ConnectorLink } from "./connectors.js";
import { ModelService } from "./model.js";
import { ModelWriteService } from "./model-writes.js";
import { SubscriptionService } from "./subscriptions.js";
import { ValueService } from "./values.js";
import { WriteService } from "./writes.js";

/**
 * Everything the route modules need, built once per process. Each service is one member; a new service
 * is one line in the interface and one line in `createServices`.
 */
export interface Services {
  config: Config;
  store: Store;
  changes: ChangeFeed;
  model: ModelService;
  values: ValueService;
  subscriptions: SubscriptionService;
  writes: WriteService;
  /** Model changes made while running (connectors): validated, stored, caches and replicas told. */
  modelWrites: ModelWriteService;
  /** The connectors, once the composition root has started them: readiness and write-back go through it. */
  connectors: ConnectorLink;
}

/**
 * `cache` is the in-process cache inside `store` (when there is one): the reads it can answer whole are
 * answered from it synchronously.
 */
export function createServices(
  config: Config,
  store: Store,
  changes: ChangeFeed,
  cache?: CachedStore,
): Services {
  const cached = directCache(cache);
  const model = new ModelService(store, cached);
  const connectors = new ConnectorLink();
  const values = new ValueService(store, config, cached, connectors);
  const services: Services = {
    config,
    store,
    changes,
    model,
    values,
    subscriptions: new SubscriptionService({ store, changes, config }),
    writes: new WriteService(store, changes, undefined, connectors),
    modelWrites: new ModelWriteService(store),
    connectors,
  };
  return services;
}
