import { readFileSync } from "node:fs";

/** The package version, read once. src/ and dist/ both sit one level below package.json. */
export const SERVER_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
})();

export const SERVER_NAME = "i3xd";
