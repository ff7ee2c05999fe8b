// Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. BENCH_CPU_PROF=dir npm run bench): the frames
// with the most self time, then self time by package or source file.
// Usage: node bench/profile-top.mjs <file.cpuprofile> [rows=40]
import fs from "node:fs";

const [file, rowsArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: node bench/profile-top.mjs <file.cpuprofile> [rows]");
  process.exit(2);
}
const limit = Number(rowsArg ?? 40);
const profile = JSON.parse(fs.readFileSync(file, "utf8"));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));

const selfByNode = new Map();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  selfByNode.set(profile.samples[i], (selfByNode.get(profile.samples[i]) ?? 0) + dt);
  total += dt;
}

const shortUrl = (url) =>
  url
    .replace(/^.*node_modules\//, "~/")
    .replace(/^file:\/\/.*?\/(dist|src)\//, "$1/")
    .replace(/^file:\/\//, "");

const frames = new Map();
const files = new Map();
for (const [id, t] of selfByNode) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  const frame = `${functionName || "(anonymous)"} ${shortUrl(url)}:${lineNumber + 1}`;
  frames.set(frame, (frames.get(frame) ?? 0) + t);
  const pkg = url.includes("node_modules/")
    ? url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, "$1")
    : url === ""
      ? functionName || "(native)"
      : shortUrl(url);
  files.set(pkg, (files.get(pkg) ?? 0) + t);
}

const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`);
for (const [k, t] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(`${pct(t)}  ${k}`);
console.log("--- self time by package / file");
for (const [k, t] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${pct(t)}  ${k}`);
