import type { Config } from "../config.js";
import type { ChangeFeed } from "../domain/changes.js";
import type { Store } from "../store/store.js";
import { ModelService } from "./model.js";
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
}

export function createServices(config: Config, store: Store, changes: ChangeFeed): Services {
  const model = new ModelService(store);
  const values = new ValueService(store, config);
  const services: Services = {
    config,
    store,
    changes,
    model,
    values,
    subscriptions: new SubscriptionService({ store, changes, config }),
    writes: new WriteService(store, changes),
  };
  return services;
}
