import {
  builtInRelationshipTypes,
  I3X_NAMESPACE,
  type JsonSchema,
  type RelationshipType,
  relationshipPair,
} from "../domain/model.js";
import { formatTimestampUs } from "../domain/time.js";
import type { ModelDocument, ModelObject, ModelObjectType, ModelValue } from "../model/format.js";
import {
  advance,
  DEMO_IDS,
  DEMO_VALUE_IDS,
  initialState,
  type PlantState,
  plantValues,
  seededRandom,
} from "./plant-physics.js";

/**
 * The demo plant: a pump station laid out like the i3X specification's own examples (pump-101 with its
 * measurements and bearing temperature, tank-201, sensor-001, the SuppliesTo / MonitoredBy graph), so
 * public i3X examples and clients work against a fresh server. Kept in code so it ships in `dist/`.
 */

export { I3X_NAMESPACE };
/** Our site/area types are a simplified projection of ISA-95's equipment hierarchy, hence `?projection`. */
export const ISA95_NAMESPACE = "https://isa.org/isa95?projection=i3xd";
export const DEMO_NAMESPACE = "urn:i3xd:demo:equipment";

/** Seeded history: one point per element every `HISTORY_STEP_S` seconds over the last `HISTORY_HOURS`. */
export const HISTORY_HOURS = 24;
export const HISTORY_STEP_S = 30;
/** Time the plant runs before the seeded window opens, so the history starts in equilibrium. */
const WARM_UP_HOURS = 6;
const SEED = 0x1_3d_f2;

const number = (description: string, extra: JsonSchema = {}): JsonSchema => ({
  type: "number",
  description,
  ...extra,
});

function objectType(
  elementId: string,
  displayName: string,
  namespaceUri: string,
  schema: JsonSchema,
): ModelObjectType {
  return { elementId, displayName, namespaceUri, sourceTypeId: displayName, version: "1.0.0", schema };
}

const OBJECT_TYPES: ModelObjectType[] = [
  objectType("UnknownType", "UnknownType", I3X_NAMESPACE, { type: "object" }),
  objectType("site-type", "SiteType", ISA95_NAMESPACE, {
    type: "object",
    properties: {
      name: { type: "string" },
      operatingMode: { type: "string", enum: ["Normal", "Maintenance", "Emergency"] },
      activeAlarms: { type: "integer", minimum: 0 },
    },
    required: ["name", "operatingMode", "activeAlarms"],
  }),
  objectType("area-type", "AreaType", ISA95_NAMESPACE, {
    type: "object",
    properties: {
      totalFlow: number("Station output flow, m³/h", { minimum: 0 }),
      runningPumps: { type: "integer", minimum: 0 },
      powerDemand: number("Electrical power drawn by the area, kW", { minimum: 0 }),
    },
    required: ["totalFlow", "runningPumps", "powerDemand"],
  }),
  objectType("pump-type", "PumpType", DEMO_NAMESPACE, {
    type: "object",
    properties: {
      mode: { type: "string", enum: ["Auto", "Manual", "Off"] },
      speedSetpoint: number("Speed demanded by the level controller, % of rated speed", {
        minimum: 0,
        maximum: 100,
      }),
      runHours: number("Operating hours counter, h", { minimum: 0 }),
      startCount: { type: "integer", minimum: 0, description: "Starts since commissioning" },
      alarmCode: { type: ["string", "null"], description: "Active alarm, null when none" },
    },
    required: ["mode", "speedSetpoint", "runHours", "startCount"],
  }),
  objectType("pump-state-type", "PumpStateType", DEMO_NAMESPACE, {
    type: "string",
    enum: ["Running", "Starting", "Stopping", "Stopped", "Fault"],
  }),
  objectType("motor-type", "MotorType", DEMO_NAMESPACE, {
    type: "object",
    properties: {
      running: { type: "boolean" },
      current: number("Phase current, A", { minimum: 0 }),
      power: number("Electrical power, kW", { minimum: 0 }),
      windingTemperature: { type: ["number", "null"], description: "Stator winding temperature, °C" },
    },
    required: ["running", "current", "power"],
  }),
  objectType("measurements-type", "MeasurementsType", DEMO_NAMESPACE, {
    type: "object",
    properties: {
      healthIndex: number("Condition score from vibration and bearing temperature, 0–100", {
        minimum: 0,
        maximum: 100,
      }),
      inTolerance: { type: "boolean" },
      lastMaintenance: { type: ["string", "null"], format: "date" },
    },
    required: ["healthIndex", "inTolerance"],
  }),
  objectType("temperature-type", "TemperatureType", DEMO_NAMESPACE, number("Temperature, °C")),
  objectType(
    "flow-rate-type",
    "FlowRateType",
    DEMO_NAMESPACE,
    number("Volumetric flow, m³/h", { minimum: 0 }),
  ),
  objectType("pressure-type", "PressureType", DEMO_NAMESPACE, number("Gauge pressure, bar", { minimum: 0 })),
  objectType("speed-type", "SpeedType", DEMO_NAMESPACE, {
    type: "integer",
    minimum: 0,
    description: "Rotational speed, rpm",
  }),
  objectType(
    "vibration-type",
    "VibrationType",
    DEMO_NAMESPACE,
    number("Vibration velocity RMS, mm/s", { minimum: 0 }),
  ),
  objectType("level-switch-type", "LevelSwitchType", DEMO_NAMESPACE, { type: "boolean" }),
  objectType("tank-type", "TankType", DEMO_NAMESPACE, {
    type: "object",
    properties: {
      level: number("Fill level, % of height", { minimum: 0, maximum: 100 }),
      volume: number("Stored volume, m³", { minimum: 0 }),
      temperature: { type: ["number", "null"], description: "Water temperature, °C" },
      highLevelAlarm: { type: "boolean" },
      lowLevelAlarm: { type: "boolean" },
    },
    required: ["level", "volume", "highLevelAlarm", "lowLevelAlarm"],
  }),
];

const RELATIONSHIP_TYPES: RelationshipType[] = [
  ...builtInRelationshipTypes(),
  ...relationshipPair("SuppliesTo", "SuppliedBy", DEMO_NAMESPACE),
  ...relationshipPair("Monitors", "MonitoredBy", DEMO_NAMESPACE),
];

const obj = (
  elementId: string,
  displayName: string,
  typeElementId: string,
  parentId: string | null,
  description: string,
): ModelObject => ({ elementId, displayName, typeElementId, parentId, description });

// As in the specification's examples, components sit under their composite in the hierarchy too.
const OBJECTS: ModelObject[] = [
  obj(DEMO_IDS.site, "Riverside Site", "site-type", null, "Water supply site"),
  obj(DEMO_IDS.area, "Pumping Area", "area-type", DEMO_IDS.site, "Pump station feeding the town reservoir"),
  obj(DEMO_IDS.pump, "pump-101", "pump-type", DEMO_IDS.area, "Variable-speed centrifugal supply pump"),
  obj(DEMO_IDS.pumpState, "pump-101 State", "pump-state-type", DEMO_IDS.pump, "Operating state"),
  obj(DEMO_IDS.motor, "pump-101 Motor", "motor-type", DEMO_IDS.pump, "11 kW induction motor"),
  obj(
    DEMO_IDS.measurements,
    "pump-101 Measurements",
    "measurements-type",
    DEMO_IDS.pump,
    "Process measurements",
  ),
  obj(
    DEMO_IDS.bearingTemperature,
    "pump-101 Bearing Temperature",
    "temperature-type",
    DEMO_IDS.measurements,
    "Drive-end bearing temperature, °C",
  ),
  obj(DEMO_IDS.flow, "pump-101 Flow", "flow-rate-type", DEMO_IDS.measurements, "Discharge flow, m³/h"),
  obj(
    DEMO_IDS.dischargePressure,
    "pump-101 Discharge Pressure",
    "pressure-type",
    DEMO_IDS.measurements,
    "Discharge pressure, bar",
  ),
  obj(DEMO_IDS.motorSpeed, "pump-101 Motor Speed", "speed-type", DEMO_IDS.measurements, "Shaft speed, rpm"),
  obj(DEMO_IDS.tank, "tank-201", "tank-type", DEMO_IDS.area, "500 m³ storage tank, 5 m high"),
  obj(
    DEMO_IDS.highLevelSwitch,
    "tank-201 High Level Switch",
    "level-switch-type",
    DEMO_IDS.tank,
    "Trips above 92 % level",
  ),
  obj(
    DEMO_IDS.tankTemperatureSensor,
    "TempSensor-201",
    "temperature-type",
    DEMO_IDS.area,
    "Tank water temperature, °C",
  ),
  obj(
    DEMO_IDS.pumpVibrationSensor,
    "VibrationSensor-101",
    "vibration-type",
    DEMO_IDS.area,
    "Pump vibration, mm/s",
  ),
  obj(DEMO_IDS.plc, "PLC-01", "UnknownType", DEMO_IDS.area, "Station controller; its type was not mapped"),
];

const rel = (sourceId: string, relationshipType: string, targetId: string) => ({
  sourceId,
  relationshipType,
  targetId,
});

const RELATIONSHIPS = [
  rel(DEMO_IDS.pump, "HasComponent", DEMO_IDS.pumpState),
  rel(DEMO_IDS.pump, "HasComponent", DEMO_IDS.motor),
  rel(DEMO_IDS.pump, "HasComponent", DEMO_IDS.measurements),
  rel(DEMO_IDS.measurements, "HasComponent", DEMO_IDS.bearingTemperature),
  rel(DEMO_IDS.measurements, "HasComponent", DEMO_IDS.flow),
  rel(DEMO_IDS.measurements, "HasComponent", DEMO_IDS.dischargePressure),
  rel(DEMO_IDS.measurements, "HasComponent", DEMO_IDS.motorSpeed),
  rel(DEMO_IDS.pump, "SuppliesTo", DEMO_IDS.tank),
  rel(DEMO_IDS.tank, "MonitoredBy", DEMO_IDS.tankTemperatureSensor),
  rel(DEMO_IDS.pumpVibrationSensor, "Monitors", DEMO_IDS.pump),
];

function pushPoints(out: ModelValue[], values: Map<string, unknown>, timestamp: string): void {
  for (const elementId of DEMO_VALUE_IDS) {
    out.push({ elementId, value: values.get(elementId), quality: "Good", timestamp });
  }
}

/**
 * The whole demo model with current values at `now` and history for the preceding 24 hours, produced by the
 * same physics the simulator continues with. Deterministic for a given `now`.
 */
export function demoPlantModel(now: Date): ModelDocument {
  const nowUs = now.getTime() * 1000;
  const stepUs = HISTORY_STEP_S * 1_000_000;
  const steps = Math.floor((HISTORY_HOURS * 3600) / HISTORY_STEP_S);
  const startUs = nowUs - steps * stepUs;
  const random = seededRandom(SEED);

  const state: PlantState = initialState(startUs - WARM_UP_HOURS * 3_600_000_000);
  advance(state, startUs, random);

  const history: ModelValue[] = [];
  let values = new Map<string, unknown>();
  for (let k = 0; k <= steps; k++) {
    advance(state, startUs + k * stepUs, random);
    values = plantValues(state, random);
    pushPoints(history, values, formatTimestampUs(state.tUs));
  }
  const current: ModelValue[] = [];
  pushPoints(current, values, formatTimestampUs(nowUs));

  return {
    namespaces: [
      { uri: I3X_NAMESPACE, displayName: "i3X" },
      { uri: ISA95_NAMESPACE, displayName: "ISA-95 (i3xd projection)" },
      { uri: DEMO_NAMESPACE, displayName: "i3xd Demo Equipment" },
    ],
    objectTypes: OBJECT_TYPES.map((t) => structuredClone(t)),
    relationshipTypes: RELATIONSHIP_TYPES.map((t) => ({ ...t })),
    objects: OBJECTS.map((o) => ({ ...o })),
    relationships: RELATIONSHIPS.map((r) => ({ ...r })),
    values: current,
    history,
  };
}
