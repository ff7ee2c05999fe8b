import type { JsonSchema, Quality } from "../../domain/model.js";
import { QUALITIES } from "../../domain/model.js";
import { parseTimestampUs } from "../../domain/time.js";
import type { ModelDocument, ModelObject, ModelObjectType, ModelRelationship } from "../../model/format.js";
import { elementIdProblem } from "../../model/validate.js";
import type { SourcePoint } from "../connector.js";
import type { QoS } from "./connection.js";
import { ancestorsOf, memberId, unescapeIdPart } from "./element-ids.js";
import type { MqttOptions, MqttRuleOptions } from "./options.js";
import { compilePayloadPath, type PayloadPath } from "./payload-path.js";
import { inferSchema, widenSchema } from "./schema-inference.js";
import {
  compileTemplate,
  compileTopicPattern,
  type Template,
  type TemplateValues,
  type TopicPattern,
} from "./topic-pattern.js";

/** A rule ready to apply; `where` names it in messages (`rules[2]`). */
export interface CompiledRule {
  where: string;
  pattern: TopicPattern;
  qos: QoS;
  elementId: Template;
  displayName: Template;
  typeElementId: Template;
  inferType: boolean;
  parentId: Template | null;
  value: PayloadPath;
  timestamp: PayloadPath | null;
  timestampFactorUs: number;
  quality: PayloadPath | null;
  qualityMap: ReadonlyMap<string, Quality>;
  composition: boolean;
  writable: boolean;
  commandTopic: Template;
  commandRetain: boolean;
}

/** A rule the file got wrong, naming the rule and the field (`rules[2].elementId: unknown placeholder {x}`). */
export class RuleError extends Error {
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "RuleError";
  }
}

/** Every rule problem of the options at once (the connectors file check), each naming its field. */
export function ruleProblems(options: MqttOptions): { field: string; problem: string }[] {
  const problems: { field: string; problem: string }[] = [];
  options.rules.forEach((rule, i) => {
    try {
      compileRule(rule, `rules[${i}]`, options.qos ?? 1);
    } catch (err) {
      if (!(err instanceof RuleError)) throw err;
      problems.push({ field: err.field, problem: err.detail });
    }
  });
  return problems;
}

export function compileRules(options: MqttOptions): CompiledRule[] {
  return options.rules.map((rule, i) => compileRule(rule, `rules[${i}]`, options.qos ?? 1));
}

function compileRule(rule: MqttRuleOptions, where: string, defaultQos: QoS): CompiledRule {
  const field = <T>(name: string, make: () => T): T => {
    try {
      return make();
    } catch (err) {
      throw new RuleError(`${where}.${name}`, err instanceof Error ? err.message : String(err));
    }
  };
  const pattern = field("topic", () => compileTopicPattern(rule.topic));
  const template = (name: keyof MqttRuleOptions, source: string) =>
    field(name, () => compileTemplate(source, pattern.names));
  const path = (name: keyof MqttRuleOptions, source: string) => field(name, () => compilePayloadPath(source));
  const qualityMap = new Map<string, Quality>(Object.entries(rule.qualityMap ?? {}));
  return {
    where,
    pattern,
    qos: rule.qos ?? defaultQos,
    elementId: template("elementId", rule.elementId ?? "{topic}"),
    displayName: template("displayName", rule.displayName ?? "{last}"),
    typeElementId: template("typeElementId", rule.typeElementId ?? "{connector}:{last}"),
    inferType: rule.inferType ?? rule.typeElementId === undefined,
    parentId: rule.parentId === undefined ? null : template("parentId", rule.parentId),
    value: path("value", rule.value ?? "$"),
    timestamp: rule.timestamp === undefined ? null : path("timestamp", rule.timestamp),
    timestampFactorUs: { ms: 1000, s: 1_000_000, us: 1 }[rule.timestampUnit ?? "ms"],
    quality: rule.quality === undefined ? null : path("quality", rule.quality),
    qualityMap,
    composition: rule.composition ?? false,
    writable: rule.writable ?? false,
    commandTopic: template("commandTopic", rule.commandTopic ?? "{topic}/set"),
    commandRetain: rule.commandRetain ?? false,
  };
}

/** What one message turned into. */
export type Mapped =
  | { outcome: "unmatched" }
  /** Nothing to store and nothing wrong (an empty payload clears a retained topic). */
  | { outcome: "ignored" }
  | { outcome: "invalid"; reason: string }
  /** The mapper must first learn whether the store holds these (see `MqttMapper.learn`); then map again. */
  | { outcome: "lookup"; objectIds: string[]; typeIds: string[] }
  | {
      outcome: "mapped";
      points: SourcePoint[];
      /** Model pieces to apply before the points; null when the model already holds them. */
      model: Partial<ModelDocument> | null;
      /** Records the model pieces as applied. */
      commit(): void;
    };

export interface MapperSettings {
  connector: string;
  namespaceUri: string;
  folderTypeId: string;
  maxElements: number;
  /** Ask before creating objects and types the mapper has not seen (the store may hold them already). */
  lookUpUnknown: boolean;
}

/** Bounds on one payload's composition, so that a hostile payload cannot create unbounded objects. */
const MAX_COMPOSITION_DEPTH = 8;
const MAX_MEMBERS = 10_000;
const I3X_QUALITIES = new Map(QUALITIES.map((q) => [q.toLowerCase(), q]));
const decoder = new TextDecoder("utf-8", { fatal: true });

interface KnownObject {
  /** typeElementId, displayName and parentId as last applied; an element defined differently is applied again. */
  definition: string;
}

/**
 * Turns MQTT messages into points and the model pieces they need (pure: no I/O). It remembers which
 * objects and types it has applied so that each is written once, and each inferred type's schema so that
 * it only ever widens.
 */
export class MqttMapper {
  private readonly objects = new Map<string, KnownObject>();
  /** Inferred types' schemas as applied; null for a type looked up and found absent. */
  private readonly types = new Map<string, JsonSchema | null>();
  private readonly lookedUp = new Set<string>();

  constructor(
    readonly rules: readonly CompiledRule[],
    private readonly settings: MapperSettings,
    private readonly declaredTypes: ReadonlySet<string>,
  ) {}

  /** The first rule whose pattern matches, with the template values of the topic. */
  route(topic: string): { rule: CompiledRule; values: TemplateValues } | null {
    for (const rule of this.rules) {
      const captures = rule.pattern.match(topic);
      if (captures) return { rule, values: { connector: this.settings.connector, topic, captures } };
    }
    return null;
  }

  /** What the store holds of ids the mapper asked about (`lookup`): objects by id, types with their schema. */
  learn(
    objects: readonly ModelObject[],
    types: readonly ModelObjectType[],
    asked: { objectIds: string[]; typeIds: string[] },
  ): void {
    for (const id of [...asked.objectIds, ...asked.typeIds]) this.lookedUp.add(id);
    for (const o of objects) this.objects.set(o.elementId, { definition: definitionOf(o) });
    for (const t of types) this.types.set(t.elementId, t.schema);
    for (const id of asked.typeIds) if (!this.types.has(id)) this.types.set(id, null);
  }

  map(topic: string, payload: Buffer, receivedUs: number): Mapped {
    const routed = this.route(topic);
    if (!routed) return { outcome: "unmatched" };
    if (payload.length === 0) return { outcome: "ignored" };
    const { rule, values } = routed;

    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(payload));
    } catch (err) {
      return {
        outcome: "invalid",
        reason: err instanceof TypeError ? "payload is not UTF-8 text" : "payload is not JSON",
      };
    }

    const elementId = rule.elementId.id(values);
    const idProblem = elementIdProblem(elementId);
    if (idProblem)
      return { outcome: "invalid", reason: `elementId "${elementId.slice(0, 80)}" ${idProblem}` };

    const value = rule.value.get(json);
    if (value === undefined) return { outcome: "invalid", reason: `no value at ${rule.value.source}` };

    let tsUs = receivedUs;
    if (rule.timestamp) {
      const raw = rule.timestamp.get(json);
      if (raw !== undefined) {
        const parsed = timestampUs(raw, rule.timestampFactorUs);
        if (parsed === null)
          return { outcome: "invalid", reason: `timestamp at ${rule.timestamp.source} is not a valid time` };
        tsUs = parsed;
      }
    }

    let quality: Quality = value === null ? "GoodNoData" : "Good";
    if (rule.quality) {
      const raw = rule.quality.get(json);
      if (raw !== undefined) {
        const mapped = qualityOf(raw, rule.qualityMap);
        if (!mapped)
          return { outcome: "invalid", reason: `quality ${JSON.stringify(raw).slice(0, 40)} is not known` };
        quality = mapped;
      }
    }
    if (quality === "Good" && value === null)
      return { outcome: "invalid", reason: "value is null with quality Good" };

    const typeId = rule.typeElementId.id(values);
    const typeProblem = elementIdProblem(typeId);
    if (typeProblem)
      return { outcome: "invalid", reason: `typeElementId "${typeId.slice(0, 80)}" ${typeProblem}` };
    let parentId: string | null;
    if (rule.parentId) {
      parentId = rule.parentId.id(values);
      const parentProblem = elementIdProblem(parentId);
      if (parentProblem)
        return { outcome: "invalid", reason: `parentId "${parentId.slice(0, 80)}" ${parentProblem}` };
    } else parentId = ancestorsOf(elementId).at(-1) ?? null;

    // Members of a composition, flattened: each with its id, parent, key and value.
    const members: Member[] = [];
    if (rule.composition) {
      if (value === null || typeof value !== "object" || Array.isArray(value))
        return { outcome: "invalid", reason: "composition value is not a JSON object" };
      const problem = flatten(elementId, typeId, value as Record<string, unknown>, 1, members);
      if (problem) return { outcome: "invalid", reason: problem };
    }

    const plan = new ModelPlan();
    // Ancestors first: an object's parent must exist when the object is written.
    if (parentId !== null) {
      for (const id of [...ancestorsOf(parentId), parentId]) {
        if (this.objects.has(id)) continue;
        plan.object(id, undefined, {
          elementId: id,
          displayName: displayNameOf(id),
          typeElementId: this.settings.folderTypeId,
          parentId: ancestorsOf(id).at(-1) ?? null,
        });
      }
    }
    const element: ModelObject = {
      elementId,
      displayName: rule.displayName.text(values),
      typeElementId: typeId,
      parentId,
      system: { source: topic },
    };
    plan.object(elementId, this.objects.get(elementId), element);

    const points: SourcePoint[] = [];
    if (rule.composition) {
      if (rule.inferType) this.planType(plan, typeId, displayNameOf(typeId), { type: "object" }, null);
      for (const m of members) {
        plan.object(m.id, this.objects.get(m.id), {
          elementId: m.id,
          displayName: m.key,
          typeElementId: m.typeId,
          parentId: m.parentId,
        });
        plan.relationship(m.parentId, m.id);
        if (m.composite) {
          this.planType(plan, m.typeId, m.key, { type: "object" }, null);
          continue;
        }
        this.planType(plan, m.typeId, m.key, null, m.value);
        const memberQuality = m.value === null && quality === "Good" ? "GoodNoData" : quality;
        points.push(point(m.id, m.value, memberQuality, tsUs));
      }
    } else {
      if (rule.inferType) this.planType(plan, typeId, displayNameOf(typeId), null, value);
      points.push(point(elementId, value, quality, tsUs));
    }

    const unknown = this.settings.lookUpUnknown ? plan.unknownIds(this.lookedUp) : null;
    if (unknown && (unknown.objectIds.length > 0 || unknown.typeIds.length > 0))
      return { outcome: "lookup", ...unknown };
    const newObjects = plan.objects.filter((o) => !this.objects.has(o.elementId)).length;
    if (this.objects.size + newObjects > this.settings.maxElements)
      return { outcome: "invalid", reason: `element limit (${this.settings.maxElements}) reached` };

    const model = plan.document(this.settings.namespaceUri);
    return {
      outcome: "mapped",
      points,
      model,
      commit: () => {
        for (const o of plan.objects) {
          this.objects.set(o.elementId, { definition: definitionOf(o) });
          this.lookedUp.add(o.elementId);
        }
        for (const t of plan.types) {
          this.types.set(t.elementId, t.schema);
          this.lookedUp.add(t.elementId);
        }
      },
    };
  }

  /** Adds the type to the plan when it is new or must widen to accept `value`. */
  private planType(
    plan: ModelPlan,
    typeId: string,
    displayName: string,
    fixed: JsonSchema | null,
    value: unknown,
  ): void {
    if (this.declaredTypes.has(typeId)) return;
    const known = plan.typeSchema(typeId) ?? this.types.get(typeId);
    plan.askType(typeId);
    if (fixed) {
      if (!known) plan.type(typeId, displayName, fixed);
      return;
    }
    const schema = known ? widenSchema(known, value) : inferSchema(value);
    if (schema !== known) plan.type(typeId, displayName, schema);
  }
}

interface Member {
  id: string;
  parentId: string;
  key: string;
  typeId: string;
  value: unknown;
  /** A member that is itself an object becomes a composition of its own (below the depth bound). */
  composite: boolean;
}

function flatten(
  parentId: string,
  parentTypeId: string,
  value: Record<string, unknown>,
  depth: number,
  out: Member[],
): string | null {
  for (const [key, member] of Object.entries(value)) {
    if (out.length >= MAX_MEMBERS) return `composition has more than ${MAX_MEMBERS} members`;
    const id = memberId(parentId, key);
    const problem = elementIdProblem(id);
    if (problem) return `member elementId "${id.slice(0, 80)}" ${problem}`;
    const typeId = memberId(parentTypeId, key);
    const composite =
      depth < MAX_COMPOSITION_DEPTH &&
      member !== null &&
      typeof member === "object" &&
      !Array.isArray(member);
    out.push({ id, parentId, key, typeId, value: member, composite });
    if (composite) {
      const nested = flatten(id, typeId, member as Record<string, unknown>, depth + 1, out);
      if (nested) return nested;
    }
  }
  return null;
}

/** The model pieces one message needs that are not yet applied. */
class ModelPlan {
  readonly objects: ModelObject[] = [];
  readonly types: ModelObjectType[] = [];
  readonly relationships: ModelRelationship[] = [];
  private readonly askedObjects: string[] = [];
  private readonly askedTypes: string[] = [];

  object(id: string, known: KnownObject | undefined, object: ModelObject): void {
    this.askedObjects.push(id);
    if (known && known.definition === definitionOf(object)) return;
    this.objects.push(object);
  }

  relationship(sourceId: string, targetId: string): void {
    this.relationships.push({ sourceId, relationshipType: "HasComponent", targetId });
  }

  askType(id: string): void {
    this.askedTypes.push(id);
  }

  type(elementId: string, displayName: string, schema: JsonSchema): void {
    const at = this.types.findIndex((t) => t.elementId === elementId);
    if (at >= 0) this.types.splice(at, 1);
    this.types.push({ elementId, displayName, namespaceUri: "", schema });
  }

  typeSchema(id: string): JsonSchema | undefined {
    return this.types.find((t) => t.elementId === id)?.schema;
  }

  unknownIds(lookedUp: ReadonlySet<string>): { objectIds: string[]; typeIds: string[] } {
    return {
      objectIds: [...new Set(this.askedObjects)].filter((id) => !lookedUp.has(id)),
      typeIds: [...new Set(this.askedTypes)].filter((id) => !lookedUp.has(id)),
    };
  }

  document(namespaceUri: string): Partial<ModelDocument> | null {
    if (this.objects.length === 0 && this.types.length === 0) return null;
    const doc: Partial<ModelDocument> = {};
    if (this.types.length > 0) doc.objectTypes = this.types.map((t) => ({ ...t, namespaceUri }));
    if (this.objects.length > 0) {
      doc.objects = this.objects;
      const created = new Set(this.objects.map((o) => o.elementId));
      const edges = this.relationships.filter((r) => created.has(r.targetId));
      if (edges.length > 0) doc.relationships = edges;
    }
    return doc;
  }
}

function definitionOf(o: ModelObject): string {
  return `${o.typeElementId}\u0000${o.displayName}\u0000${o.parentId ?? ""}`;
}

/** An id's last `/` level, unescaped: what a folder or an inferred type is called. */
function displayNameOf(id: string): string {
  const last = id.slice(id.lastIndexOf("/") + 1);
  try {
    return unescapeIdPart(last) || last || id;
  } catch {
    return last;
  }
}

function point(elementId: string, value: unknown, quality: Quality, tsUs: number): SourcePoint {
  return { elementId, value: quality === "Bad" || quality === "GoodNoData" ? null : value, quality, tsUs };
}

function timestampUs(raw: unknown, factorUs: number): number | null {
  let us: number | null = null;
  if (typeof raw === "number") us = Math.round(raw * factorUs);
  else if (typeof raw === "string") {
    us = parseTimestampUs(raw);
    // RFC 3339 with an offset instead of Z: millisecond precision is what Date gives.
    if (us === null && /^\d{4}-\d\d-\d\dT.*(Z|[+-]\d\d:\d\d)$/.test(raw)) {
      const ms = Date.parse(raw);
      us = Number.isFinite(ms) ? ms * 1000 : null;
    }
  }
  // Before 1970 or past 2^53 µs (year 2255) is a wrong unit or garbage, not a plant timestamp.
  return us !== null && Number.isSafeInteger(us) && us >= 0 ? us : null;
}

function qualityOf(raw: unknown, map: ReadonlyMap<string, Quality>): Quality | null {
  if (raw === null || typeof raw === "object") return null;
  const text = String(raw);
  return map.get(text) ?? I3X_QUALITIES.get(text.toLowerCase()) ?? null;
}
