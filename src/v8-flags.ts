import v8 from "node:v8";

/**
 * V8 settings of the server process. The CLI imports this module before any other, so they hold before
 * the rest of the server is even loaded. A flag the operator passed to node (`node --<flag>` or
 * `NODE_OPTIONS`) wins.
 *
 * `--no-allocation-site-pretenuring`: V8 allocates objects from a code site straight into the old
 * generation once most of them have survived a young-generation collection. Under load, request objects
 * can cross that line for a moment (a slow collection, start-up garbage); from then on the pretenured
 * objects keep the young ones they point to alive, those are promoted too, and every young collection
 * copies megabytes. The server then stays in that state for good: with tracing on, 4 of 5 runs of the
 * value benchmark fell into it, taking 7 ms per young collection instead of 0.8 and ~40 µs more CPU per
 * request. With the flag, 0 of 10 (bench/README.md, fifth round).
 */
const FLAGS = ["--no-allocation-site-pretenuring"];

const given = `${process.execArgv.join(" ")} ${process.env.NODE_OPTIONS ?? ""}`;
for (const flag of FLAGS) {
  const name = flag.replace(/^--(no-)?/, "");
  if (!given.includes(name)) v8.setFlagsFromString(flag);
}
