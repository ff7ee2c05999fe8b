/**
 * History reader thread entry used when i3xd runs from its TypeScript sources (`node --import tsx`, the
 * tests): worker threads on Node 20 do not inherit the tsx loader of the main thread, so the thread loads
 * the reader through tsx itself. Built installs (dist/) start sqlite-reader.js directly.
 */
import { tsImport } from "tsx/esm/api";

await tsImport("./sqlite-reader.ts", import.meta.url);
