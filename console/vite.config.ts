import { defineConfig } from "vite";

/** The console is served by i3xd at `/`, its assets under `/console/` (src/api/console.ts). */
export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  // Everything comes from the server's own origin: no CDN, nothing inlined into the page (CSP).
  build: {
    outDir: "../dist/console",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    target: "es2022",
  },
});
