import { describe, expect, it } from "vitest";
import { demoPlantModel, HISTORY_HOURS, HISTORY_STEP_S } from "../../src/demo/demo-plant.js";
import type { ObjectRecord } from "../../src/domain/model.js";
import { parseTimestampUs } from "../../src/domain/time.js";
import type { ModelValue } from "../../src/model/format.js";
import { SchemaRegistry } from "../../src/model/schemas.js";

const NOW = new Date("2026-03-04T12:34:56.789Z");
const model = demoPlantModel(NOW);

function series(id: string): ModelValue[] {
  return (model.history ?? []).filter((p) => p.elementId === id);
}
const numbers = (id: string, field?: string) =>
  series(id).map((p) => (field ? (p.value as Record<string, number>)[field] : (p.value as number)));

function correlation(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    cov += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) ** 2;
    vb += (b[i] - mb) ** 2;
  }
  return cov / Math.sqrt(va * vb);
}

describe("demo plant model", () => {
  it("has the address space public i3X examples expect", () => {
    const ids = model.objects.map((o) => o.elementId);
    for (const id of [
      "site-1",
      "area-pumping",
      "pump-101",
      "pump-101-measurements",
      "pump-101-bearing-temperature",
      "tank-201",
      "sensor-001",
      "sensor-002",
    ]) {
      expect(ids).toContain(id);
    }
    const roots = model.objects.filter((o) => o.parentId === null).map((o) => o.elementId);
    expect(roots).toEqual(["site-1"]);
    const rels = model.relationships ?? [];
    expect(rels).toContainEqual({
      sourceId: "pump-101",
      relationshipType: "SuppliesTo",
      targetId: "tank-201",
    });
    expect(rels).toContainEqual({
      sourceId: "tank-201",
      relationshipType: "MonitoredBy",
      targetId: "sensor-001",
    });
    expect(rels).toContainEqual({
      sourceId: "pump-101",
      relationshipType: "HasComponent",
      targetId: "pump-101-measurements",
    });
    expect(rels).toContainEqual({
      sourceId: "pump-101-measurements",
      relationshipType: "HasComponent",
      targetId: "pump-101-bearing-temperature",
    });
  });

  it("registers every relationship type with its reverse, and every referenced type", () => {
    const relTypes = new Map(model.relationshipTypes.map((r) => [r.elementId, r]));
    for (const name of [
      "HasParent",
      "HasChildren",
      "HasComponent",
      "ComponentOf",
      "SuppliesTo",
      "SuppliedBy",
      "MonitoredBy",
      "Monitors",
    ]) {
      const rt = relTypes.get(name);
      expect(rt, name).toBeDefined();
      expect(relTypes.get(rt?.reverseOf ?? "")?.reverseOf).toBe(name);
      expect(rt?.relationshipId).toBe(name);
    }
    for (const r of model.relationships ?? []) expect(relTypes.has(r.relationshipType)).toBe(true);
    const namespaces = new Set(model.namespaces.map((n) => n.uri));
    for (const t of [...model.objectTypes, ...model.relationshipTypes])
      expect(namespaces.has(t.namespaceUri)).toBe(true);
    const typeIds = new Set(model.objectTypes.map((t) => t.elementId));
    expect(typeIds.has("UnknownType")).toBe(true);
    for (const o of model.objects) expect(typeIds.has(o.typeElementId), o.elementId).toBe(true);
    const kinds = new Set(model.objectTypes.map((t) => t.schema.type));
    for (const k of ["object", "number", "integer", "boolean", "string"]) expect(kinds.has(k)).toBe(true);
  });

  it("seeds a current value for every object and validates every value against its own schemas", () => {
    const registry = new SchemaRegistry();
    registry.register(model.objectTypes.map((t) => ({ ...t, sourceTypeId: t.sourceTypeId ?? t.elementId })));
    const objects = new Map(model.objects.map((o) => [o.elementId, o]));
    const current = model.values ?? [];
    expect(new Set(current.map((v) => v.elementId))).toEqual(new Set(objects.keys()));
    const all = [...current, ...(model.history ?? [])];
    let checked = 0;
    for (const point of all) {
      const o = objects.get(point.elementId);
      expect(o, point.elementId).toBeDefined();
      const record: ObjectRecord = {
        elementId: point.elementId,
        displayName: o?.displayName ?? "",
        typeElementId: o?.typeElementId ?? "",
        parentId: o?.parentId ?? null,
        isComposition: false,
        isExtended: false,
      };
      expect(point.quality).toBe("Good");
      expect(point.value).not.toBeNull();
      const problem = registry.validateObject(record, point.value);
      if (problem) expect.fail(`${point.elementId} @ ${point.timestamp}: ${problem}`);
      checked++;
    }
    expect(checked).toBe(all.length);
  });

  it("seeds 24 h of history per object at a fixed resolution, ending with the current value", () => {
    const nowUs = NOW.getTime() * 1000;
    const expected = (HISTORY_HOURS * 3600) / HISTORY_STEP_S + 1;
    for (const o of model.objects) {
      const points = series(o.elementId);
      expect(points.length, o.elementId).toBe(expected);
      const ts = points.map((p) => parseTimestampUs(p.timestamp) as number);
      expect(ts[0]).toBe(nowUs - HISTORY_HOURS * 3_600_000_000);
      expect(ts.at(-1)).toBe(nowUs);
      for (let i = 1; i < ts.length; i++) expect(ts[i] - ts[i - 1]).toBe(HISTORY_STEP_S * 1_000_000);
      const current = model.values?.find((v) => v.elementId === o.elementId);
      expect(current?.timestamp).toBe(points.at(-1)?.timestamp);
      expect(current?.value).toEqual(points.at(-1)?.value);
    }
  });

  it("is deterministic for a given time", () => {
    expect(demoPlantModel(NOW)).toEqual(model);
  });

  it("tells a physically consistent story, not noise", () => {
    const flow = numbers("pump-101-flow");
    const speed = numbers("pump-101-motor-speed");
    const pressure = numbers("pump-101-discharge-pressure");
    const power = numbers("pump-101-motor", "power");
    const bearing = numbers("pump-101-bearing-temperature");
    const level = numbers("tank-201", "level");
    const state = series("pump-101-state").map((p) => p.value);

    // Flow, head and power follow speed (affinity laws).
    expect(correlation(speed, flow)).toBeGreaterThan(0.9);
    expect(correlation(speed, pressure)).toBeGreaterThan(0.9);
    expect(correlation(flow, power)).toBeGreaterThan(0.9);
    // A stopped pump delivers nothing and draws nothing.
    state.forEach((s, i) => {
      if (s === "Stopped") {
        expect(flow[i]).toBe(0);
        expect(power[i]).toBe(0);
      }
    });
    // Signals are smooth in time: strong lag-1 autocorrelation.
    expect(correlation(level.slice(1), level.slice(0, -1))).toBeGreaterThan(0.99);
    expect(correlation(bearing.slice(1), bearing.slice(0, -1))).toBeGreaterThan(0.95);
    // The tank integrates: its level moves a little per step, never jumps.
    for (let i = 1; i < level.length; i++) expect(Math.abs(level[i] - level[i - 1])).toBeLessThan(1);
    // Bearing temperature follows load with lag: it correlates better with power some minutes earlier.
    const lag = 40; // 20 minutes at 30 s
    const lagged = correlation(bearing.slice(lag), power.slice(0, -lag));
    expect(lagged).toBeGreaterThan(correlation(bearing, power));
    expect(lagged).toBeGreaterThan(0.6);
    // The tank level stays in its operating band and the day has a cycle in it.
    expect(Math.min(...level)).toBeGreaterThan(15);
    expect(Math.max(...level)).toBeLessThan(100);
    expect(Math.max(...level) - Math.min(...level)).toBeGreaterThan(10);
  });
});
