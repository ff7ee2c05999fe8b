/**
 * pino transport entry used when i3xd runs from its TypeScript sources (`node --import tsx`): worker threads
 * on Node 20 do not inherit the tsx loader of the main thread, so the worker loads the transport through
 * tsx itself. Built installs (dist/) load worker.js directly and never use this file.
 */
import { tsImport } from "tsx/esm/api";

const transport = await tsImport("./worker.ts", import.meta.url);

export default transport.default;
