import { describe, expect, it } from "vitest";
import type { ObjectRecord, ObjectType } from "../../src/domain/model.js";
import { SchemaRegistry } from "../../src/model/schemas.js";
import { setRootLogger } from "../../src/observability/logger.js";

setRootLogger("silent");

const type = (elementId: string, schema: Record<string, unknown>): ObjectType => ({
  elementId,
  displayName: elementId,
  namespaceUri: "urn:test",
  sourceTypeId: elementId,
  schema,
});

const pump = type("PumpType", {
  type: "object",
  properties: {
    flowRate: { type: "number" },
    outletTemp: { type: ["number", "null"] },
    alarmCode: { type: ["string", "null"] },
  },
  required: ["flowRate"],
});

describe("SchemaRegistry", () => {
  it("accepts conforming values and treats nullability strictly from the schema", () => {
    const reg = new SchemaRegistry();
    reg.register([pump]);
    expect(reg.validate("PumpType", { flowRate: 12.5 })).toBeNull();
    expect(reg.validate("PumpType", { flowRate: 12.5, outletTemp: null, alarmCode: null })).toBeNull();
    expect(reg.validate("PumpType", { flowRate: null })).toMatch(
      /value\.flowRate is null but the schema does not declare it nullable/,
    );
    expect(reg.validate("PumpType", { outletTemp: 3 })).toMatch(/missing required field "flowRate"/);
    expect(reg.validate("PumpType", { flowRate: "fast" })).toMatch(/value\.flowRate must be of type number/);
    expect(reg.validate("PumpType", 5)).toMatch(/value must be of type object/);
  });

  it("validates scalar leaf types, enums and formats", () => {
    const reg = new SchemaRegistry();
    reg.register([
      type("n", { type: "number" }),
      type("i", { type: "integer" }),
      type("b", { type: "boolean" }),
      type("s", { type: "string", enum: ["Running", "Stopped"] }),
      type("d", { type: "string", format: "date" }),
    ]);
    expect(reg.validate("n", 1.5)).toBeNull();
    expect(reg.validate("n", "1.5")).not.toBeNull();
    expect(reg.validate("i", 3)).toBeNull();
    expect(reg.validate("i", 3.5)).toMatch(/must be of type integer/);
    expect(reg.validate("b", false)).toBeNull();
    expect(reg.validate("b", 0)).not.toBeNull();
    expect(reg.validate("s", "Running")).toBeNull();
    expect(reg.validate("s", "Flying")).toMatch(/must be one of "Running", "Stopped"/);
    expect(reg.validate("d", "2025-06-01")).toBeNull();
    expect(reg.validate("d", "June 1st")).toMatch(/must match format "date"/);
  });

  it("compiles a schema once and recompiles only when the type's schema changes", () => {
    const reg = new SchemaRegistry();
    reg.register([type("t", { type: "number" })]);
    expect(reg.validate("t", "x")).not.toBeNull();
    // Same schema, new object (as a store without a cache returns it): kept.
    reg.register([type("t", { type: "number" })]);
    expect(reg.validate("t", 1)).toBeNull();
    // Changed by a later import: the next validation uses the new schema.
    reg.register([type("t", { type: "string" })]);
    expect(reg.validate("t", "x")).toBeNull();
    expect(reg.validate("t", 1)).not.toBeNull();
    reg.invalidate("t");
    expect(reg.has("t")).toBe(false);
  });

  it("supports 2020-12 schemas and types sharing an $id", () => {
    const reg = new SchemaRegistry();
    reg.register([
      type("pair", {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        $id: "https://example.com/schemas/x",
        type: "array",
        prefixItems: [{ type: "number" }, { $ref: "#/$defs/unit" }],
        $defs: { unit: { type: "string" } },
      }),
      type("other", { $id: "https://example.com/schemas/x", type: "string" }),
    ]);
    expect(reg.validate("pair", [1, "C"])).toBeNull();
    expect(reg.validate("pair", ["C", 1])).toMatch(/value\[0\] must be of type number/);
    expect(reg.validate("other", "ok")).toBeNull();
  });

  it("reports an unknown type or an uncompilable schema as a server fault", () => {
    const reg = new SchemaRegistry();
    expect(() => reg.validate("nope", 1)).toThrow(/not registered/);
    reg.register([type("broken", { type: "object", properties: { a: { $ref: "#/definitions/missing" } } })]);
    expect(() => reg.validate("broken", {})).toThrow(/cannot be compiled/);
  });

  it("lets extended objects carry attributes their type does not declare", () => {
    const reg = new SchemaRegistry();
    reg.register([
      type("closed", {
        type: "object",
        properties: { temperature: { type: "number" } },
        required: ["temperature"],
        additionalProperties: false,
      }),
    ]);
    const plain: ObjectRecord = {
      elementId: "s1",
      displayName: "s1",
      typeElementId: "closed",
      parentId: null,
      isComposition: false,
      isExtended: false,
    };
    const extended: ObjectRecord = {
      ...plain,
      isExtended: true,
      schemaExtensions: { serial: { type: "string" } },
    };
    const value = { temperature: 20, serial: "SN-1" };
    expect(reg.validateObject(plain, value)).toMatch(/field "serial" that the type does not declare/);
    expect(reg.validateObject(extended, value)).toBeNull();
    expect(reg.validateObject(extended, { temperature: 20, serial: 7 })).toMatch(
      /value\.serial must be of type string/,
    );
    expect(reg.validateObject(extended, { serial: "x" })).toMatch(/missing required field "temperature"/);
  });
});
