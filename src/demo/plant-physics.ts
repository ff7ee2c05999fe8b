import type { Vqt } from "../domain/model.js";
import { parseTimestampUs } from "../domain/time.js";

/**
 * A small process model of the demo pump station, shared by the seeded history and the live simulator so
 * that both tell the same story: a variable-speed centrifugal pump fills a storage tank against a diurnal
 * outflow demand; a level controller sets the pump speed; flow and pressure come from the pump and system
 * curves; motor power, current, bearing and winding temperatures follow the load with thermal lag.
 */

export const DEMO_IDS = {
  site: "site-1",
  area: "area-pumping",
  pump: "pump-101",
  pumpState: "pump-101-state",
  motor: "pump-101-motor",
  measurements: "pump-101-measurements",
  bearingTemperature: "pump-101-bearing-temperature",
  flow: "pump-101-flow",
  dischargePressure: "pump-101-discharge-pressure",
  motorSpeed: "pump-101-motor-speed",
  tank: "tank-201",
  highLevelSwitch: "tank-201-high-level-switch",
  tankTemperatureSensor: "sensor-001",
  pumpVibrationSensor: "sensor-002",
  plc: "plc-01",
} as const;

/** Every demo object that carries a value, in the order the simulator writes them. */
export const DEMO_VALUE_IDS: readonly string[] = Object.values(DEMO_IDS);

const TANK_CAPACITY_M3 = 500;
const TANK_HEIGHT_M = 5;
const RATED_SPEED_RPM = 1480;
const SHUTOFF_HEAD_M = 45;
const PUMP_CURVE_K = 0.0015;
const PIPE_K = 0.0008;
const STATIC_HEAD_M = 12;
const BEST_EFFICIENCY_FLOW = 95;
const RATED_CURRENT_A = 21;
const RATED_POWER_KW = 11;
const SUCTION_PRESSURE_BAR = 0.25;
const MIN_SPEED_RATIO = 0.62;
/** The high-level switch trips the pump; it restarts once the level has fallen well below. */
const HIGH_LEVEL_SWITCH_PCT = 92;
const RESTART_LEVEL_PCT = 80;
const HIGH_LEVEL_PCT = 90;
const LOW_LEVEL_PCT = 15;
const VIBRATION_LIMIT = 4.5;
const BEARING_LIMIT_C = 75;
const US_PER_S = 1_000_000;
/** Longest physics step; longer gaps are integrated in steps of this size. */
export const MAX_STEP_S = 30;

/** Everything the model remembers between steps; all other quantities are derived from it. */
export interface PlantState {
  tUs: number;
  tankVolume: number;
  speedRpm: number;
  running: boolean;
  bearingTemp: number;
  windingTemp: number;
  tankTemp: number;
  /** Deviation of the outflow demand from its daily profile (Ornstein–Uhlenbeck), m³/h. */
  demandDeviation: number;
  vibrationWear: number;
  runHours: number;
  startCount: number;
  lastMaintenance: string | null;
  plcUptimeS: number;
}

/** Random source (uniform in [0,1)); seeded for the history so a given `now` always gives the same data. */
export type Random = () => number;

export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: Random): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};
/** First-order lag towards `target` over `dt` with time constant `tau` (exact, stable for any step). */
const relax = (x: number, target: number, dt: number, tau: number) =>
  target + (x - target) * Math.exp(-dt / tau);

function hourOfDay(tUs: number): number {
  const ms = tUs / 1000;
  return (((ms % 86_400_000) + 86_400_000) % 86_400_000) / 3_600_000;
}

/** A bump centred on `centre` hours with width `sigma`, wrapping round midnight. */
function dailyBump(h: number, centre: number, sigma: number): number {
  const d = Math.abs(h - centre);
  const dist = Math.min(d, 24 - d);
  return Math.exp(-(dist * dist) / (2 * sigma * sigma));
}

export function ambientTemp(tUs: number): number {
  return 14 + 6 * Math.sin((2 * Math.PI * (hourOfDay(tUs) - 9)) / 24);
}

/** Outflow the town draws from the tank: morning and evening peaks over a night-time base, m³/h. */
export function demandProfile(tUs: number): number {
  const h = hourOfDay(tUs);
  return 45 + 35 * dailyBump(h, 7.5, 1.5) + 40 * dailyBump(h, 19, 2) + 15 * dailyBump(h, 13, 3);
}

/**
 * The operator tops the tank up overnight on cheap power (the pump then rests once the tank is full) and
 * lets it draw down during the day.
 */
function levelSetpoint(tUs: number): number {
  return 62 + 34 * dailyBump(hourOfDay(tUs), 3.5, 1.8);
}

function staticHead(levelPct: number): number {
  return STATIC_HEAD_M + (TANK_HEIGHT_M * levelPct) / 100;
}

/** Operating point where the pump curve at this speed meets the system curve. */
function operatingPoint(speedRpm: number, levelPct: number): { flow: number; head: number } {
  const r = speedRpm / RATED_SPEED_RPM;
  const shutoff = SHUTOFF_HEAD_M * r * r;
  const hs = staticHead(levelPct);
  if (shutoff <= hs) return { flow: 0, head: shutoff };
  const flow = Math.sqrt((shutoff - hs) / (PUMP_CURVE_K + PIPE_K));
  return { flow, head: hs + PIPE_K * flow * flow };
}

/** Speed that delivers `flow` against the current system curve. */
function speedFor(flow: number, levelPct: number): number {
  const head = staticHead(levelPct) + (PUMP_CURVE_K + PIPE_K) * flow * flow;
  return Math.sqrt(head / SHUTOFF_HEAD_M) * RATED_SPEED_RPM;
}

export function levelPct(state: PlantState): number {
  return (state.tankVolume / TANK_CAPACITY_M3) * 100;
}

/** Speed the level controller asks for right now (0 when the pump is stopped). */
function speedCommand(state: PlantState, demand: number): number {
  if (!state.running) return 0;
  const level = levelPct(state);
  const wanted = clamp(demand + 5 * (levelSetpoint(state.tUs) - level), 0, 140);
  return clamp(speedFor(wanted, level), MIN_SPEED_RATIO * RATED_SPEED_RPM, RATED_SPEED_RPM);
}

interface Derived {
  demand: number;
  command: number;
  flow: number;
  head: number;
  powerKw: number;
  currentA: number;
  vibration: number;
}

function derive(state: PlantState, random: Random | null): Derived {
  const demand = Math.max(5, demandProfile(state.tUs) + state.demandDeviation);
  const command = speedCommand(state, demand);
  const level = levelPct(state);
  const { flow, head } = operatingPoint(state.speedRpm, level);
  const r = state.speedRpm / RATED_SPEED_RPM;
  const hydraulicKw = (9.81 * flow * head) / 3600;
  const x = flow / BEST_EFFICIENCY_FLOW - 1;
  const efficiency = clamp(0.8 * (1 - 0.5 * x * x), 0.3, 0.85);
  const shaftKw = hydraulicKw / efficiency + 0.5 * r * r * r;
  const powerKw = state.speedRpm > 1 ? shaftKw / 0.92 + 0.25 : 0;
  const currentA = (powerKw * 1000) / (Math.sqrt(3) * 400 * 0.86);
  const noise = random ? 0.04 * gaussian(random) : 0;
  const vibration =
    state.speedRpm > 1 ? 0.9 + 2.1 * r * r + state.vibrationWear + noise : 0.12 + Math.abs(noise) / 4;
  return { demand, command, flow, head, powerKw, currentA, vibration: Math.max(0, vibration) };
}

/** A plausible mid-morning state to start from; `warmUp` runs it into equilibrium. */
export function initialState(tUs: number): PlantState {
  return {
    tUs,
    tankVolume: 0.7 * TANK_CAPACITY_M3,
    speedRpm: 0.8 * RATED_SPEED_RPM,
    running: true,
    bearingTemp: 45,
    windingTemp: 55,
    tankTemp: ambientTemp(tUs) + 1.5,
    demandDeviation: 0,
    vibrationWear: 0.15,
    runHours: 18_240,
    startCount: 1_312,
    lastMaintenance: new Date(tUs / 1000 - 41 * 86_400_000).toISOString().slice(0, 10),
    plcUptimeS: 3 * 86_400,
  };
}

/** Advances the plant by `dt` seconds (at most `MAX_STEP_S`; callers split longer gaps). */
function step(state: PlantState, dt: number, random: Random): void {
  const level = levelPct(state);
  if (state.running && level > HIGH_LEVEL_SWITCH_PCT) state.running = false;
  else if (!state.running && level < RESTART_LEVEL_PCT) {
    state.running = true;
    state.startCount += 1;
  }
  const d = derive(state, null);
  const ambient = ambientTemp(state.tUs);

  state.tankVolume = clamp(state.tankVolume + ((d.flow - d.demand) * dt) / 3600, 0, TANK_CAPACITY_M3);
  state.speedRpm = relax(state.speedRpm, d.command, dt, 4);
  if (state.speedRpm < 1) state.speedRpm = 0;
  const load = d.powerKw / RATED_POWER_KW;
  const bearingTarget = ambient + 8 + 30 * load + 6 * (state.speedRpm / RATED_SPEED_RPM);
  // A standing pump loses the oil-film heat but the casing cools slowly.
  state.bearingTemp = relax(state.bearingTemp, bearingTarget, dt, state.running ? 900 : 2400);
  state.windingTemp = relax(
    state.windingTemp,
    ambient + 5 + 70 * (d.currentA / RATED_CURRENT_A) ** 2,
    dt,
    480,
  );
  state.tankTemp = relax(state.tankTemp, ambient + 1.5, dt, 6 * 3600);
  const decay = Math.exp(-dt / 600);
  state.demandDeviation = state.demandDeviation * decay + 5 * Math.sqrt(1 - decay * decay) * gaussian(random);
  state.vibrationWear += 2e-7 * dt;
  if (state.running) state.runHours += dt / 3600;
  state.plcUptimeS += dt;
  state.tUs += Math.round(dt * US_PER_S);
}

/** Advances the plant to `tUs`, integrating long gaps in steps of at most `MAX_STEP_S`. */
export function advance(state: PlantState, tUs: number, random: Random): void {
  while (state.tUs < tUs) {
    const dt = Math.min(MAX_STEP_S, (tUs - state.tUs) / US_PER_S);
    step(state, dt, random);
    if (tUs - state.tUs < 1) state.tUs = tUs;
  }
}

/** The value of every demo object at the state's time, each conforming to its object type's schema. */
export function plantValues(state: PlantState, random: Random): Map<string, unknown> {
  const d = derive(state, random);
  const level = levelPct(state);
  const pressure = SUCTION_PRESSURE_BAR + 0.0981 * d.head + 0.01 * gaussian(random);
  const bearing = state.bearingTemp + 0.05 * gaussian(random);
  const vibrationHigh = d.vibration > VIBRATION_LIMIT;
  const bearingHigh = bearing > BEARING_LIMIT_C;
  const highLevel = level > HIGH_LEVEL_PCT;
  const lowLevel = level < LOW_LEVEL_PCT;
  const alarmCode = vibrationHigh ? "HIGH_VIBRATION" : bearingHigh ? "HIGH_BEARING_TEMPERATURE" : null;
  const alarms = [vibrationHigh || bearingHigh, highLevel, lowLevel].filter(Boolean).length;
  const spinning = state.speedRpm > 1;
  const pumpState = state.running
    ? state.speedRpm < 0.9 * d.command
      ? "Starting"
      : "Running"
    : spinning
      ? "Stopping"
      : "Stopped";
  const health = clamp(100 - 8 * Math.max(0, d.vibration - 2.5) - 1.5 * Math.max(0, bearing - 60), 0, 100);

  return new Map<string, unknown>([
    [DEMO_IDS.site, { name: "Riverside Pump Station", operatingMode: "Normal", activeAlarms: alarms }],
    [
      DEMO_IDS.area,
      { totalFlow: round(d.flow, 2), runningPumps: state.running ? 1 : 0, powerDemand: round(d.powerKw, 2) },
    ],
    [
      DEMO_IDS.pump,
      {
        mode: "Auto",
        speedSetpoint: round((d.command / RATED_SPEED_RPM) * 100, 1),
        runHours: round(state.runHours, 2),
        startCount: state.startCount,
        alarmCode,
      },
    ],
    [DEMO_IDS.pumpState, pumpState],
    [
      DEMO_IDS.motor,
      {
        running: state.running,
        current: round(d.currentA, 2),
        power: round(d.powerKw, 2),
        windingTemperature: round(state.windingTemp + 0.1 * gaussian(random), 2),
      },
    ],
    [
      DEMO_IDS.measurements,
      {
        healthIndex: round(health, 1),
        inTolerance: !vibrationHigh && !bearingHigh,
        lastMaintenance: state.lastMaintenance,
      },
    ],
    [DEMO_IDS.bearingTemperature, round(bearing, 2)],
    [DEMO_IDS.flow, round(Math.max(0, d.flow + (d.flow > 0 ? 0.3 * gaussian(random) : 0)), 2)],
    [DEMO_IDS.dischargePressure, round(Math.max(0, pressure), 3)],
    [DEMO_IDS.motorSpeed, Math.round(state.speedRpm)],
    [
      DEMO_IDS.tank,
      {
        level: round(level, 2),
        volume: round(state.tankVolume, 1),
        temperature: round(state.tankTemp, 2),
        highLevelAlarm: highLevel,
        lowLevelAlarm: lowLevel,
      },
    ],
    [DEMO_IDS.highLevelSwitch, level > HIGH_LEVEL_SWITCH_PCT],
    [DEMO_IDS.tankTemperatureSensor, round(state.tankTemp + 0.05 * gaussian(random), 2)],
    [DEMO_IDS.pumpVibrationSensor, round(d.vibration, 3)],
    [
      DEMO_IDS.plc,
      {
        cpuLoad: round(clamp(22 + 6 * (d.powerKw / RATED_POWER_KW) + 2 * gaussian(random), 0, 100), 1),
        uptime: Math.floor(state.plcUptimeS),
        firmware: "4.2.1",
      },
    ],
  ]);
}

/**
 * Rebuilds the plant state from stored current values, so a restarted simulator carries on where the
 * stored data left off. Anything missing or malformed falls back to the initial state.
 */
export function restoreState(current: ReadonlyMap<string, Vqt>, nowUs: number): PlantState {
  const state = initialState(nowUs);
  // The state is as of the stored values' time; the caller integrates forward from there.
  const storedAt = parseTimestampUs(current.get(DEMO_IDS.tank)?.timestamp);
  if (storedAt !== null && storedAt <= nowUs) state.tUs = storedAt;
  const num = (id: string, field?: string): number | undefined => {
    const v = current.get(id);
    if (!v || v.value === null || v.value === undefined) return undefined;
    const raw = field ? (v.value as Record<string, unknown>)?.[field] : v.value;
    return typeof raw === "number" && Number.isFinite(raw) ? raw : undefined;
  };
  const field = (id: string, name: string): unknown => {
    const v = current.get(id)?.value;
    return v !== null && typeof v === "object" ? (v as Record<string, unknown>)[name] : undefined;
  };
  const level = num(DEMO_IDS.tank, "volume");
  if (level !== undefined) state.tankVolume = clamp(level, 0, TANK_CAPACITY_M3);
  const speed = num(DEMO_IDS.motorSpeed);
  if (speed !== undefined) state.speedRpm = clamp(speed, 0, RATED_SPEED_RPM);
  const running = field(DEMO_IDS.motor, "running");
  if (typeof running === "boolean") state.running = running;
  state.bearingTemp = num(DEMO_IDS.bearingTemperature) ?? state.bearingTemp;
  state.windingTemp = num(DEMO_IDS.motor, "windingTemperature") ?? state.windingTemp;
  state.tankTemp = num(DEMO_IDS.tank, "temperature") ?? state.tankTemp;
  state.runHours = num(DEMO_IDS.pump, "runHours") ?? state.runHours;
  const starts = num(DEMO_IDS.pump, "startCount");
  if (starts !== undefined && Number.isInteger(starts)) state.startCount = starts;
  const vibration = num(DEMO_IDS.pumpVibrationSensor);
  if (vibration !== undefined && speed !== undefined && speed > 1) {
    const r = speed / RATED_SPEED_RPM;
    state.vibrationWear = clamp(vibration - 0.9 - 2.1 * r * r, 0, 2);
  }
  const maintenance = field(DEMO_IDS.measurements, "lastMaintenance");
  if (maintenance === null || typeof maintenance === "string") state.lastMaintenance = maintenance;
  state.plcUptimeS = num(DEMO_IDS.plc, "uptime") ?? state.plcUptimeS;
  return state;
}
