import v8 from "node:v8";

/**
 * V8 settings of the server process. The CLI imports this module before any other, so they hold before
 * the rest of the server is even loaded. The same flag passed to node (`node --<flag> dist/cli.js`) wins.
 *
 * `--no-allocation-site-pretenuring`: V8 allocates the objects of a code site straight into the old
 * generation once most of them have survived a young-generation collection. A loaded server could tip
 * into that for request objects, and then the pretenured objects kept the young ones they point to alive,
 * those were promoted too, and every young collection copied megabytes; a run that fell into it stayed
 * there. The measurements are in docs/performance-notes.md.
 */
const FLAGS = ["--no-allocation-site-pretenuring"];

const given = process.execArgv.join(" ");
for (const flag of FLAGS) {
  const name = flag.replace(/^--(no-)?/, "");
  if (!given.includes(name)) v8.setFlagsFromString(flag);
}
