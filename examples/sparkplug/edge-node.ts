/**
 * The demo pump station as a Sparkplug B edge node: the physics that drive i3xd's own demo plant,
 * published as group `Riverside`, edge node `pumping`, devices `pump-101`, `tank-201`, `sensor-001` and
 * `sensor-002`. The NBIRTH defines the templates `Pump` and `Motor` (a Pump has a Motor); pump-101 carries
 * one Pump instance, folders of measurements and a writable speed setpoint. DDATA goes out by alias; a
 * DCMD to `Setpoints/Speed` is applied and reported back; an NCMD `Node Control/Rebirth` sends the births
 * again. The NDEATH is the MQTT Will, with the session's bdSeq.
 *
 *     node --import tsx examples/sparkplug/edge-node.ts
 *
 * Settings: MQTT_URL (default mqtt://127.0.0.1:1883), PUBLISH_INTERVAL_MS (default 1000), SPARKPLUG_GROUP
 * (default Riverside).
 */
import mqtt from "mqtt";
import sparkplugPayload from "sparkplug-payload";
import type { UMetric, UPayload } from "sparkplug-payload/lib/sparkplugbpayload.js";
import { advance, DEMO_IDS, initialState, plantValues, seededRandom } from "../../src/demo/plant-physics.js";

const url = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const intervalMs = Number(process.env.PUBLISH_INTERVAL_MS ?? 1000);
const GROUP = process.env.SPARKPLUG_GROUP ?? "Riverside";
const NODE = "pumping";
const codec = sparkplugPayload.get("spBv1.0");
if (!codec) throw new Error("sparkplug-payload does not know spBv1.0");
const sparkplug = codec;

type Values = Map<string, unknown>;
type Metric = Omit<UMetric, "value" | "name"> & { name?: string; value: unknown };
const unit = (engUnit: string) => ({ engUnit: { type: "String" as const, value: engUnit } });

const random = seededRandom(0x1_3d_f2);
const state = initialState(Date.now() * 1000);
let speedSetpoint = 80;
// bdSeq counts this process's sessions: each connect announces the next one in its Will and NBIRTH.
let bdSeq = 0;
let seq = 0;

const motor = (m: Record<string, unknown>) => ({
  templateRef: "Motor",
  isDefinition: false,
  metrics: [
    { name: "Running", type: "Boolean", value: m.running },
    { name: "Current", type: "Float", value: m.current, properties: unit("A") },
    { name: "Power", type: "Float", value: m.power, properties: unit("kW") },
    { name: "WindingTemperature", type: "Float", value: m.windingTemperature, properties: unit("°C") },
  ],
});

const pump = (values: Values) => {
  const p = values.get(DEMO_IDS.pump) as Record<string, unknown>;
  return {
    templateRef: "Pump",
    isDefinition: false,
    metrics: [
      { name: "Mode", type: "String", value: p.mode },
      { name: "State", type: "String", value: values.get(DEMO_IDS.pumpState) },
      { name: "RunHours", type: "Double", value: p.runHours, properties: unit("h") },
      { name: "StartCount", type: "Int32", value: p.startCount },
      { name: "AlarmCode", type: "String", value: p.alarmCode ?? null },
      {
        name: "Motor",
        type: "Template",
        value: motor(values.get(DEMO_IDS.motor) as Record<string, unknown>),
      },
    ],
  };
};

/** Every device's metrics with their aliases (unique per edge node, as Sparkplug wants). */
function deviceMetrics(values: Values): Record<string, Metric[]> {
  const tank = values.get(DEMO_IDS.tank) as Record<string, unknown>;
  return {
    "pump-101": [
      { name: "Pump", alias: 100, type: "Template", value: pump(values) },
      { name: "Setpoints/Speed", alias: 101, type: "Float", value: speedSetpoint, properties: unit("%") },
      {
        name: "Measurements/Flow",
        alias: 102,
        type: "Double",
        value: values.get(DEMO_IDS.flow),
        properties: unit("m³/h"),
      },
      {
        name: "Measurements/DischargePressure",
        alias: 103,
        type: "Double",
        value: values.get(DEMO_IDS.dischargePressure),
        properties: unit("bar"),
      },
      {
        name: "Measurements/BearingTemperature",
        alias: 104,
        type: "Double",
        value: values.get(DEMO_IDS.bearingTemperature),
        properties: unit("°C"),
      },
      {
        name: "Measurements/MotorSpeed",
        alias: 105,
        type: "Int32",
        value: values.get(DEMO_IDS.motorSpeed),
        properties: unit("rpm"),
      },
    ],
    "tank-201": [
      { name: "Level", alias: 200, type: "Double", value: tank.level, properties: unit("%") },
      { name: "Volume", alias: 201, type: "Double", value: tank.volume, properties: unit("m³") },
      { name: "HighLevelAlarm", alias: 202, type: "Boolean", value: tank.highLevelAlarm },
      { name: "LowLevelAlarm", alias: 203, type: "Boolean", value: tank.lowLevelAlarm },
      { name: "HighLevelSwitch", alias: 204, type: "Boolean", value: values.get(DEMO_IDS.highLevelSwitch) },
    ],
    "sensor-001": [
      {
        name: "Temperature",
        alias: 300,
        type: "Double",
        value: values.get(DEMO_IDS.tankTemperatureSensor),
        properties: unit("°C"),
      },
    ],
    "sensor-002": [
      {
        name: "Vibration",
        alias: 400,
        type: "Double",
        value: values.get(DEMO_IDS.pumpVibrationSensor),
        properties: unit("mm/s"),
      },
    ],
  };
}

const TEMPLATES: Metric[] = [
  {
    name: "Motor",
    type: "Template",
    value: {
      ...motor({ running: false, current: 0, power: 0, windingTemperature: 0 }),
      templateRef: undefined,
      isDefinition: true,
      version: "1.0.0",
    },
  },
  {
    name: "Pump",
    type: "Template",
    value: {
      isDefinition: true,
      version: "1.0.0",
      metrics: [
        { name: "Mode", type: "String", value: "" },
        { name: "State", type: "String", value: "" },
        { name: "RunHours", type: "Double", value: 0, properties: unit("h") },
        { name: "StartCount", type: "Int32", value: 0 },
        { name: "AlarmCode", type: "String", value: null },
        {
          name: "Motor",
          type: "Template",
          value: { templateRef: "Motor", isDefinition: false, metrics: [] },
        },
      ],
      parameters: [{ name: "RatedSpeed", type: "Int32", value: 2900 }],
    },
  },
];

const encode = (payload: { timestamp: number; seq?: number; metrics: Metric[] }) =>
  Buffer.from(sparkplug.encodePayload(payload as unknown as UPayload));

const willPayload = () =>
  encode({ timestamp: Date.now(), metrics: [{ name: "bdSeq", type: "UInt64", value: bdSeq }] });

const client = mqtt.connect(url, {
  clientId: `${GROUP}-${NODE}-${process.pid}`,
  clean: true,
  reconnectPeriod: 1000,
  will: { topic: `spBv1.0/${GROUP}/NDEATH/${NODE}`, payload: willPayload(), qos: 1, retain: false },
});

function publish(kind: string, device: string | undefined, metrics: Metric[]): void {
  const topic = `spBv1.0/${GROUP}/${kind}/${NODE}${device ? `/${device}` : ""}`;
  const nextSeq = kind === "NBIRTH" ? 0 : (seq + 1) % 256;
  seq = nextSeq;
  client.publish(topic, encode({ timestamp: Date.now(), seq: nextSeq, metrics }), { qos: 0 });
}

function births(): void {
  advance(state, Date.now() * 1000, random);
  const values = plantValues(state, random);
  publish("NBIRTH", undefined, [
    { name: "bdSeq", type: "UInt64", value: bdSeq },
    { name: "Node Control/Rebirth", alias: 1, type: "Boolean", value: false },
    ...TEMPLATES,
  ]);
  for (const [device, metrics] of Object.entries(deviceMetrics(values))) publish("DBIRTH", device, metrics);
}

client.on("connect", () => {
  console.log(
    `edge node ${GROUP}/${NODE} on ${url}: births, then DDATA every ${intervalMs} ms (Ctrl-C stops)`,
  );
  client.subscribe([`spBv1.0/${GROUP}/NCMD/${NODE}`, `spBv1.0/${GROUP}/DCMD/${NODE}/+`], { qos: 0 });
  births();
  // The next session's Will announces the next bdSeq.
  bdSeq = (bdSeq + 1) % 256;
  client.options.will = {
    topic: `spBv1.0/${GROUP}/NDEATH/${NODE}`,
    payload: willPayload(),
    qos: 1,
    retain: false,
  };
});
client.on("error", (err) => console.error(`broker: ${err.message}`));
client.on("message", (topic, bytes) => {
  let payload: UPayload;
  try {
    payload = sparkplug.decodePayload(bytes);
  } catch {
    console.error(`ignored an undecodable command on ${topic}`);
    return;
  }
  for (const m of payload.metrics ?? []) {
    if (m.name === "Node Control/Rebirth" && m.value === true) {
      console.log("rebirth requested");
      births();
    } else if (topic.endsWith("/pump-101") && (m.name === "Setpoints/Speed" || String(m.alias) === "101")) {
      const value = Number(m.value);
      if (!(value >= 0 && value <= 100)) {
        console.error(`ignored speed setpoint ${m.value}: expected 0 to 100`);
        continue;
      }
      speedSetpoint = value;
      publish("DDATA", "pump-101", [{ alias: 101, type: "Float", value }]);
      console.log(`speed setpoint set to ${value} %`);
    }
  }
});

const timer = setInterval(() => {
  if (!client.connected) return;
  advance(state, Date.now() * 1000, random);
  const values = plantValues(state, random);
  for (const [device, metrics] of Object.entries(deviceMetrics(values))) {
    // DATA carries aliases only (Sparkplug's compact form); the host knows names from the births.
    publish(
      "DDATA",
      device,
      metrics.map(({ name: _name, properties: _p, ...m }) => m as Metric),
    );
  }
}, intervalMs);

process.on("SIGINT", () => {
  clearInterval(timer);
  client.end(false, {}, () => process.exit(0));
});
