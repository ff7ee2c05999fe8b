// biome-ignore-all lint/suspicious/noExplicitAny: response bodies are arbitrary JSON read by assertions
import { describe, expect, it } from "vitest";
import { getJson, getRaw, gunzipJson, postJson, postText } from "../helpers/http.js";
import { useTestServer } from "../helpers/server.js";

const srv = useTestServer();

function expectFailure(body: any, status: number) {
  expect(body.success).toBe(false);
  expect(body.responseDetail).toEqual({ title: expect.any(String), status, detail: expect.any(String) });
  expect(body.responseDetail.detail.length).toBeGreaterThan(0);
}

describe("GET /v1/info", () => {
  it("answers the success envelope with spec version and boolean capabilities", async () => {
    const res = await getJson(srv.url, "/v1/info");
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const info = res.body.result;
    expect(info.specVersion).toBe("1.0");
    expect(info.serverName).toBe("i3xd");
    expect(typeof info.serverVersion).toBe("string");
    expect(info.capabilities.query.history).toBe(true);
    for (const flag of [info.capabilities.update.current, info.capabilities.update.history]) {
      expect(typeof flag).toBe("boolean");
    }
    expect(typeof info.capabilities.subscribe.stream).toBe("boolean");
  });

  it("reports update and stream capabilities exactly when their routes exist", async () => {
    const info = (await getJson(srv.url, "/v1/info")).body.result;
    const has = (method: string, path: string) => srv.server.app.hasRoute({ method, url: path });
    expect(info.capabilities.update.current).toBe(has("PUT", "/v1/objects/value"));
    expect(info.capabilities.update.history).toBe(has("PUT", "/v1/objects/history"));
    expect(info.capabilities.subscribe.stream).toBe(has("POST", "/v1/subscriptions/stream"));
  });
});

describe("GET /v1/namespaces", () => {
  it("lists at least one namespace with uri and displayName", async () => {
    const res = await getJson(srv.url, "/v1/namespaces");
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    expect(res.body.result.length).toBeGreaterThan(0);
    for (const ns of res.body.result) expect(Object.keys(ns).sort()).toEqual(["displayName", "uri"]);
    const uris = res.body.result.map((n: any) => n.uri);
    expect(new Set(uris).size).toBe(uris.length);
  });
});

describe("object types", () => {
  it("lists every type with a schema and its namespace", async () => {
    const res = await getJson(srv.url, "/v1/objecttypes");
    expect(res.status).toBe(200);
    const types = res.body.result;
    const pump = types.find((t: any) => t.elementId === "pump-type");
    expect(pump).toMatchObject({ displayName: expect.any(String), namespaceUri: expect.any(String) });
    expect(pump.schema.type).toBe("object");
    expect(typeof pump.sourceTypeId).toBe("string");
    const namespaces = (await getJson(srv.url, "/v1/namespaces")).body.result.map((n: any) => n.uri);
    for (const t of types) {
      expect(namespaces).toContain(t.namespaceUri);
      expect(t.schema).toBeTypeOf("object");
    }
  });

  it("filters by namespaceUri, and an unknown namespace is an empty list", async () => {
    const all = (await getJson(srv.url, "/v1/objecttypes")).body.result;
    const ns = all.find((t: any) => t.elementId === "pump-type").namespaceUri;
    const res = await getJson(srv.url, `/v1/objecttypes?namespaceUri=${encodeURIComponent(ns)}`);
    expect(res.status).toBe(200);
    expect(res.body.result.length).toBeGreaterThan(0);
    expect(res.body.result.length).toBeLessThan(all.length);
    for (const t of res.body.result) expect(t.namespaceUri).toBe(ns);
    const none = await getJson(srv.url, "/v1/objecttypes?namespaceUri=urn:nothing:here");
    expect(none.body).toEqual({ success: true, result: [] });
  });

  it("queries by elementId in request order with a per-item 404", async () => {
    const res = await postJson(srv.url, "/v1/objecttypes/query", {
      elementIds: ["tank-type", "no-such-type", "pump-type"],
    });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results).toHaveLength(3);
    expect(res.body.results[0]).toMatchObject({ success: true, elementId: "tank-type" });
    expect(res.body.results[0].result.elementId).toBe("tank-type");
    expect(res.body.results[1]).toEqual({
      success: false,
      elementId: "no-such-type",
      responseDetail: { title: "Not Found", status: 404, detail: "Object type not found: no-such-type" },
    });
    expect(res.body.results[2].result.elementId).toBe("pump-type");
  });

  it("is all success when every id exists", async () => {
    const res = await postJson(srv.url, "/v1/objecttypes/query", { elementIds: ["pump-type"] });
    expect(res.body.success).toBe(true);
  });
});

describe("relationship types", () => {
  it("lists every type with a registered reverse", async () => {
    const res = await getJson(srv.url, "/v1/relationshiptypes");
    expect(res.status).toBe(200);
    const types = res.body.result;
    const ids = new Set(types.map((t: any) => t.elementId));
    for (const name of [
      "HasParent",
      "HasChildren",
      "HasComponent",
      "ComponentOf",
      "SuppliesTo",
      "SuppliedBy",
    ]) {
      expect(ids.has(name)).toBe(true);
    }
    for (const t of types) {
      expect(Object.keys(t).sort()).toEqual([
        "displayName",
        "elementId",
        "namespaceUri",
        "relationshipId",
        "reverseOf",
      ]);
      expect(ids.has(t.reverseOf)).toBe(true);
    }
  });

  it("filters by namespaceUri", async () => {
    const all = (await getJson(srv.url, "/v1/relationshiptypes")).body.result;
    const ns = all.find((t: any) => t.elementId === "HasParent").namespaceUri;
    const res = await getJson(srv.url, `/v1/relationshiptypes?namespaceUri=${encodeURIComponent(ns)}`);
    for (const t of res.body.result) expect(t.namespaceUri).toBe(ns);
    expect(res.body.result.map((t: any) => t.elementId)).toContain("HasChildren");
  });

  it("queries by elementId with a per-item 404", async () => {
    const res = await postJson(srv.url, "/v1/relationshiptypes/query", {
      elementIds: ["nope", "SuppliesTo"],
    });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results[0].responseDetail).toEqual({
      title: "Not Found",
      status: 404,
      detail: "Relationship type not found: nope",
    });
    expect(res.body.results[1].result).toMatchObject({ elementId: "SuppliesTo", reverseOf: "SuppliedBy" });
  });
});

describe("GET /v1/objects", () => {
  it("lists all objects without metadata by default", async () => {
    const res = await getJson(srv.url, "/v1/objects");
    expect(res.status).toBe(200);
    const ids = res.body.result.map((o: any) => o.elementId);
    for (const id of ["pump-101", "pump-101-measurements", "pump-101-bearing-temperature", "tank-201"]) {
      expect(ids).toContain(id);
    }
    for (const o of res.body.result) {
      expect(Object.keys(o).sort()).toEqual([
        "displayName",
        "elementId",
        "isComposition",
        "isExtended",
        "parentId",
        "typeElementId",
      ]);
    }
    const pump = res.body.result.find((o: any) => o.elementId === "pump-101");
    expect(pump.isComposition).toBe(true);
  });

  it("root=true gives the roots, with parentId null", async () => {
    const res = await getJson(srv.url, "/v1/objects?root=true");
    expect(res.body.result.length).toBeGreaterThan(0);
    for (const o of res.body.result) expect(o.parentId).toBeNull();
    const all = (await getJson(srv.url, "/v1/objects")).body.result;
    expect(res.body.result.length).toBeLessThan(all.length);
    const falseRoot = await getJson(srv.url, "/v1/objects?root=false");
    expect(falseRoot.body.result.length).toBe(all.length);
  });

  it("filters by typeElementId, combined with root", async () => {
    const res = await getJson(srv.url, "/v1/objects?typeElementId=temperature-type");
    expect(res.body.result.length).toBeGreaterThan(0);
    for (const o of res.body.result) expect(o.typeElementId).toBe("temperature-type");
    const both = await getJson(srv.url, "/v1/objects?typeElementId=temperature-type&root=true");
    expect(both.body.result).toEqual([]);
    const unknown = await getJson(srv.url, "/v1/objects?typeElementId=no-such-type");
    expect(unknown.body).toEqual({ success: true, result: [] });
  });

  it("includeMetadata adds type provenance and relationships", async () => {
    const res = await getJson(srv.url, "/v1/objects?includeMetadata=true");
    const pump = res.body.result.find((o: any) => o.elementId === "pump-101");
    expect(pump.metadata.typeNamespaceUri).toEqual(expect.any(String));
    expect(pump.metadata.sourceTypeId).toEqual(expect.any(String));
    expect(pump.metadata.relationships.HasComponent).toEqual(
      expect.arrayContaining(["pump-101-measurements"]),
    );
    expect(pump.metadata.relationships.SuppliesTo).toEqual(["tank-201"]);
    expect(pump.metadata.relationships.HasParent).toBe(pump.parentId);
    const bearing = res.body.result.find((o: any) => o.elementId === "pump-101-bearing-temperature");
    expect(bearing.metadata.relationships.ComponentOf).toBe("pump-101-measurements");
  });

  it("rejects a query flag that is not true or false", async () => {
    const res = await getJson(srv.url, "/v1/objects?root=maybe");
    expect(res.status).toBe(400);
    expectFailure(res.body, 400);
    expect(res.body.responseDetail.detail).toContain("root");
  });
});

describe("POST /v1/objects/list", () => {
  it("returns objects in request order and size, duplicates included, with per-item 404", async () => {
    const res = await postJson(srv.url, "/v1/objects/list", {
      elementIds: ["tank-201", "ghost", "pump-101", "tank-201"],
    });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(false);
    expect(res.body.results.map((r: any) => r.elementId)).toEqual([
      "tank-201",
      "ghost",
      "pump-101",
      "tank-201",
    ]);
    expect(res.body.results[1]).toEqual({
      success: false,
      elementId: "ghost",
      responseDetail: { title: "Not Found", status: 404, detail: "Element not found: ghost" },
    });
    expect(res.body.results[0].result).toMatchObject({ elementId: "tank-201", isComposition: false });
    expect(res.body.results[0].result.metadata).toBeUndefined();
    expect(res.body.results[3]).toEqual(res.body.results[0]);
  });

  it("answers a repeated read with the serializer's bytes", async () => {
    const post = (body: unknown) => postText(`${srv.url}/v1/objects/list`, body);
    const ids = ["pump-101", "tank-201", "pump-101"];
    await post({ elementIds: ids });
    const text = await post({ elementIds: ids });
    expect(await post({ elementIds: ids })).toBe(text);
    expect(text).toBe(JSON.stringify(JSON.parse(text)));
    expect(JSON.parse(text).results.map((r: any) => r.result.elementId)).toEqual(ids);
    // A 404 item takes the same items through the route's serializer: the bytes must be the same.
    const items = text.slice(text.indexOf("[") + 1, text.lastIndexOf("]"));
    expect(await post({ elementIds: [...ids, "ghost"] })).toContain(
      `[${items},{"success":false,"elementId":"ghost"`,
    );
  });

  it("includes metadata on request", async () => {
    const res = await postJson(srv.url, "/v1/objects/list", {
      elementIds: ["tank-201"],
      includeMetadata: true,
    });
    expect(res.body.success).toBe(true);
    const tank = res.body.results[0].result;
    expect(tank.metadata.relationships.SuppliedBy).toEqual(["pump-101"]);
    expect(tank.metadata.description).toEqual(expect.any(String));
  });

  it("ignores properties it does not know", async () => {
    const res = await postJson(srv.url, "/v1/objects/list", { elementIds: ["tank-201"], futureOption: 7 });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
  });
});

describe("POST /v1/objects/related", () => {
  it("is symmetric: pump-101 SuppliesTo tank-201 and tank-201 SuppliedBy pump-101", async () => {
    const res = await postJson(srv.url, "/v1/objects/related", { elementIds: ["pump-101", "tank-201"] });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const [pump, tank] = res.body.results;
    expect(pump.elementId).toBe("pump-101");
    expect(pump.result).toContainEqual({
      sourceRelationship: "SuppliesTo",
      object: expect.objectContaining({ elementId: "tank-201" }),
    });
    expect(tank.result).toContainEqual({
      sourceRelationship: "SuppliedBy",
      object: expect.objectContaining({ elementId: "pump-101" }),
    });
  });

  it("includes hierarchy and composition edges in both directions", async () => {
    const res = await postJson(srv.url, "/v1/objects/related", { elementIds: ["pump-101-measurements"] });
    const edges = res.body.results[0].result.map((e: any) => `${e.sourceRelationship} ${e.object.elementId}`);
    expect(edges).toContain("HasParent pump-101");
    expect(edges).toContain("ComponentOf pump-101");
    expect(edges).toContain("HasComponent pump-101-bearing-temperature");
    expect(edges).toContain("HasChildren pump-101-bearing-temperature");
    const parent = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["pump-101"],
      relationshipType: "HasChildren",
    });
    const children = parent.body.results[0].result.map((e: any) => e.object.elementId);
    expect(children).toContain("pump-101-measurements");
  });

  it("filters by relationship type as seen from the requested object", async () => {
    const res = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["pump-101", "tank-201"],
      relationshipType: "SuppliesTo",
    });
    expect(res.body.results[0].result.map((e: any) => e.object.elementId)).toEqual(["tank-201"]);
    expect(res.body.results[1].result).toEqual([]);
    const all = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["tank-201"],
      relationshipType: null,
    });
    expect(all.body.results[0].result.length).toBeGreaterThan(1);
  });

  it("returns metadata on related objects when asked", async () => {
    const res = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["tank-201"],
      relationshipType: "SuppliedBy",
      includeMetadata: true,
    });
    expect(res.body.results[0].result[0].object.metadata.relationships.SuppliesTo).toEqual(["tank-201"]);
  });

  it("answers a per-item 404 for unknown elements and 404 for an unknown relationship type", async () => {
    const res = await postJson(srv.url, "/v1/objects/related", { elementIds: ["ghost", "tank-201"] });
    expect(res.body.success).toBe(false);
    expect(res.body.results[0].responseDetail.detail).toBe("Element not found: ghost");
    expect(res.body.results[1].success).toBe(true);
    const bad = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["tank-201"],
      relationshipType: "Nope",
    });
    expect(bad.status).toBe(404);
    expectFailure(bad.body, 404);
    expect(bad.body.responseDetail.detail).toBe("Relationship type not found: Nope");
  });
});

describe("malformed requests", () => {
  const bulkPaths = [
    "/v1/objecttypes/query",
    "/v1/relationshiptypes/query",
    "/v1/objects/list",
    "/v1/objects/related",
    "/v1/objects/value",
  ];

  it.each(bulkPaths)("%s: missing, empty or mistyped elementIds is 400 with responseDetail", async (path) => {
    for (const body of [{}, { elementIds: [] }, { elementIds: "pump-101" }, { elementIds: [1] }]) {
      const res = await postJson(srv.url, path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expectFailure(res.body, 400);
      expect(res.body.responseDetail.detail).toContain("elementIds");
    }
  });

  it.each(bulkPaths)("%s: broken JSON is 400, a non-JSON body is 415", async (path) => {
    const broken = await postJson(srv.url, path, '{"elementIds": [');
    expect(broken.status).toBe(400);
    expectFailure(broken.body, 400);
    const text = await postJson(srv.url, path, "pump-101", { headers: { "content-type": "text/plain" } });
    expect(text.status).toBe(415);
    expectFailure(text.body, 415);
  });

  it("rejects more ids than the bulk limit", async () => {
    const ids = Array.from({ length: srv.server.services.config.maxBulkItems + 1 }, (_, i) => `x-${i}`);
    const res = await postJson(srv.url, "/v1/objects/list", { elementIds: ids });
    expect(res.status).toBe(400);
    expect(res.body.responseDetail.detail).toContain("elementIds");
  });

  it("rejects a mistyped includeMetadata or relationshipType", async () => {
    const a = await postJson(srv.url, "/v1/objects/list", {
      elementIds: ["pump-101"],
      includeMetadata: "yes",
    });
    expect(a.status).toBe(400);
    const b = await postJson(srv.url, "/v1/objects/related", {
      elementIds: ["pump-101"],
      relationshipType: 3,
    });
    expect(b.status).toBe(400);
  });

  it("answers unknown routes with the failure envelope", async () => {
    const res = await getJson(srv.url, "/v1/nothing-here");
    expect(res.status).toBe(404);
    expectFailure(res.body, 404);
  });
});

// Last in the file: it adds an object to the shared server's model.
describe("GET /v1/objects, repeated", () => {
  it("answers a repeated listing byte for byte, gzip included, and a changed model with the new listing", async () => {
    const first = await getRaw(`${srv.url}/v1/objects`);
    const again = await getRaw(`${srv.url}/v1/objects`);
    expect(again.body.equals(first.body)).toBe(true);
    expect(again.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(again.headers["content-length"]).toBe(String(first.body.length));
    const zipped = await getRaw(`${srv.url}/v1/objects`, { "accept-encoding": "gzip" });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(gunzipJson(zipped.body)).toEqual(JSON.parse(first.body.toString("utf8")));

    await srv.server.store.importModel({
      namespaces: [],
      objectTypes: [],
      relationshipTypes: [],
      objects: [
        {
          elementId: "spare-listed",
          displayName: "Spare, listed",
          typeElementId: "temperature-type",
          parentId: "area-pumping",
        },
      ],
    });
    const changed = await getRaw(`${srv.url}/v1/objects`);
    const ids = JSON.parse(changed.body.toString("utf8")).result.map((o: any) => o.elementId);
    expect(ids).toContain("spare-listed");
    expect(ids.length).toBe(JSON.parse(first.body.toString("utf8")).result.length + 1);
    expect((await getRaw(`${srv.url}/v1/objects`)).body.equals(changed.body)).toBe(true);
  });
});
