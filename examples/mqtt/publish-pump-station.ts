/**
 * Publishes the demo pump station as a Unified Namespace on an MQTT broker: the physics that drive
 * i3xd's own demo plant, one JSON payload per topic under `riverside/pumping/...`, retained so that a
 * subscriber arriving later sees the last value at once. Commands sent to
 * `riverside/pumping/pump-101/speed-setpoint/set` are applied and published back as the new setpoint.
 *
 *     node --import tsx examples/mqtt/publish-pump-station.ts
 *
 * Settings: MQTT_URL (default mqtt://127.0.0.1:1883), PUBLISH_INTERVAL_MS (default 1000), UNS_ROOT (default
 * riverside/pumping: the area's topic).
 */
import mqtt from "mqtt";
import { advance, DEMO_IDS, initialState, plantValues, seededRandom } from "../../src/demo/plant-physics.js";

const url = process.env.MQTT_URL ?? "mqtt://127.0.0.1:1883";
const intervalMs = Number(process.env.PUBLISH_INTERVAL_MS ?? 1000);
const ROOT = process.env.UNS_ROOT ?? "riverside/pumping";

/** Each topic and the demo value it carries. */
const TOPICS: [topic: string, demoId: string][] = [
  ["pump-101/status", DEMO_IDS.pump],
  ["pump-101/state", DEMO_IDS.pumpState],
  ["pump-101/motor", DEMO_IDS.motor],
  ["pump-101/flow", DEMO_IDS.flow],
  ["pump-101/discharge-pressure", DEMO_IDS.dischargePressure],
  ["pump-101/bearing-temperature", DEMO_IDS.bearingTemperature],
  ["pump-101/motor-speed", DEMO_IDS.motorSpeed],
  ["tank-201/status", DEMO_IDS.tank],
  ["tank-201/high-level-switch", DEMO_IDS.highLevelSwitch],
  ["sensor-001/temperature", DEMO_IDS.tankTemperatureSensor],
  ["sensor-002/vibration", DEMO_IDS.pumpVibrationSensor],
];
const SETPOINT = `${ROOT}/pump-101/speed-setpoint`;

const random = seededRandom(0x1_3d_f2);
const state = initialState(Date.now() * 1000);
let speedSetpoint = 80;

const client = mqtt.connect(url, { clientId: `pump-station-${process.pid}`, reconnectPeriod: 1000 });
const publish = (topic: string, value: unknown) =>
  client.publish(topic, JSON.stringify({ value, timestamp: new Date().toISOString() }), {
    qos: 1,
    retain: true,
  });

client.on("connect", () => {
  console.log(`publishing the pump station to ${url} under ${ROOT}/ every ${intervalMs} ms (Ctrl-C stops)`);
  client.subscribe(`${SETPOINT}/set`, { qos: 1 });
  publish(SETPOINT, speedSetpoint);
});
client.on("error", (err) => console.error(`broker: ${err.message}`));
client.on("message", (_topic, payload) => {
  try {
    const value = JSON.parse(payload.toString());
    if (typeof value !== "number" || value < 0 || value > 100)
      throw new Error("expected a number from 0 to 100");
    speedSetpoint = value;
    publish(SETPOINT, speedSetpoint);
    console.log(`speed setpoint set to ${value} %`);
  } catch (err) {
    console.error(`ignored command ${payload.toString().slice(0, 80)}: ${(err as Error).message}`);
  }
});

const timer = setInterval(() => {
  if (!client.connected) return;
  advance(state, Date.now() * 1000, random);
  const values = plantValues(state, random);
  for (const [topic, demoId] of TOPICS) publish(`${ROOT}/${topic}`, values.get(demoId));
}, intervalMs);

process.on("SIGINT", () => {
  clearInterval(timer);
  client.end(false, {}, () => process.exit(0));
});
