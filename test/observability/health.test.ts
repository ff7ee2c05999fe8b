import { renameSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { getJson } from "../helpers/http.js";
import { useTestServer } from "../helpers/server.js";

const srv = useTestServer();

describe("health probes", () => {
  it("answers live and ready without authentication, with a request id", async () => {
    const live = await getJson(srv.url, "/health/live");
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ success: true, result: { status: "live" } });
    expect(live.headers.get("x-request-id")).toBeTruthy();

    const ready = await getJson(srv.url, "/health/ready");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      success: true,
      result: { status: "ready", store: "sqlite", storage: "ok" },
    });
  });

  it("turns not-ready (503 with a reason) while the database file is gone, and ready again once it is back", async () => {
    const file = path.join(srv.server.dataDir, "i3xd.sqlite");
    const away = `${file}.moved-away`;
    renameSync(file, away);
    try {
      const down = await getJson(srv.url, "/health/ready");
      expect(down.status).toBe(503);
      expect(down.body.success).toBe(false);
      expect(down.body.responseDetail.status).toBe(503);
      expect(down.body.responseDetail.title).toBe("Service Unavailable");
      expect(down.body.responseDetail.detail).toMatch(/^Store unreachable: .+/);
      // Liveness is about the process, not its dependencies.
      expect((await getJson(srv.url, "/health/live")).status).toBe(200);
    } finally {
      renameSync(away, file);
    }
    const up = await getJson(srv.url, "/health/ready");
    expect(up.status).toBe(200);
    // And the store really serves again.
    expect((await getJson(srv.url, "/v1/namespaces")).status).toBe(200);
  });

  it("turns not-ready when the store's handle is lost, and recovers on the next probe", async () => {
    const store = srv.server.store as unknown as { inner?: { close(): Promise<void> } };
    const backing = store.inner ?? srv.server.store;
    await backing.close();
    const file = path.join(srv.server.dataDir, "i3xd.sqlite");
    const away = `${file}.moved-away`;
    renameSync(file, away);
    try {
      expect((await getJson(srv.url, "/health/ready")).status).toBe(503);
    } finally {
      renameSync(away, file);
    }
    expect((await getJson(srv.url, "/health/ready")).status).toBe(200);
    expect((await getJson(srv.url, "/v1/namespaces")).status).toBe(200);
  });
});
