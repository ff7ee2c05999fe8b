// biome-ignore lint/suspicious/noExplicitAny: response bodies are arbitrary JSON
type Body = any;

async function call(baseUrl: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text === "" ? undefined : JSON.parse(text)) as Body };
}
const getJson = (baseUrl: string, path: string) => call(baseUrl, "GET", path);
const postJson = (baseUrl: string, path: string, body: unknown, options: { method?: string } = {}) =>
  call(baseUrl, options.method ?? "POST", path, body);

/**
 * A subscription watching one sensor, so the subscription gauges and queues have something to show.
 * Returns its id.
 */
export async function openSubscription(baseUrl: string): Promise<string> {
  const created = await postJson(baseUrl, "/v1/subscriptions", { clientId: "ops-test" });
  if (created.status !== 200) throw new Error(`create subscription: ${created.status}`);
  const subscriptionId: string = created.body.result.subscriptionId;
  const registered = await postJson(baseUrl, "/v1/subscriptions/register", {
    clientId: "ops-test",
    subscriptionId,
    elementIds: ["sensor-001", "pump-101"],
    maxDepth: 0,
  });
  if (registered.status !== 200) throw new Error(`register: ${registered.status}`);
  return subscriptionId;
}

let tick = 0;

/**
 * One round of ordinary traffic over the API: reads across the route groups (so the caches are used),
 * writes (data points), and a request for an unknown route (404, `endpoint="unmatched"`).
 */
export async function trafficRound(baseUrl: string): Promise<void> {
  tick++;
  const expect = (what: string, status: number, want: number) => {
    if (status !== want) throw new Error(`${what} answered ${status}, expected ${want}`);
  };
  const results = await Promise.all([
    getJson(baseUrl, "/v1/info"),
    getJson(baseUrl, "/v1/namespaces"),
    getJson(baseUrl, "/v1/objecttypes"),
    getJson(baseUrl, "/v1/objects?includeMetadata=true"),
    postJson(baseUrl, "/v1/objects/list", { elementIds: ["pump-101", "sensor-001", "tank-201"] }),
    postJson(baseUrl, "/v1/objects/value", { elementIds: ["pump-101", "sensor-001"], maxDepth: 0 }),
    postJson(baseUrl, "/v1/objects/related", { elementIds: ["pump-101"] }),
    postJson(
      baseUrl,
      "/v1/objects/value",
      { updates: [{ elementId: "sensor-001", value: { value: 20 + (tick % 10), quality: "Good" } }] },
      { method: "PUT" },
    ),
    getJson(baseUrl, "/v1/no-such-route"),
  ]);
  const [info, ns, types, objects, list, value, related, write, missing] = results;
  expect("GET /v1/info", info.status, 200);
  expect("GET /v1/namespaces", ns.status, 200);
  expect("GET /v1/objecttypes", types.status, 200);
  expect("GET /v1/objects", objects.status, 200);
  expect("POST /v1/objects/list", list.status, 200);
  expect("POST /v1/objects/value", value.status, 200);
  expect("POST /v1/objects/related", related.status, 200);
  expect("PUT /v1/objects/value", write.status, 200);
  expect("GET /v1/no-such-route", missing.status, 404);
}

/** Requests to the test-only fault route (I3XD_TEST_FAULTS=1): each answers 500. */
export async function faultRound(baseUrl: string, count: number): Promise<void> {
  const answers = await Promise.all(
    Array.from({ length: count }, () => postJson(baseUrl, "/v1/_test/fault", {})),
  );
  for (const a of answers) if (a.status !== 500) throw new Error(`fault route answered ${a.status}`);
}
