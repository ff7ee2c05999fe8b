import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, readRepoFile } from "./files.js";

/** The documentation a reader follows links through: the README, docs/, the ADRs and the benchmark's. */
function markdownFiles(): string[] {
  const inDir = (dir: string) =>
    readdirSync(path.join(ROOT, dir))
      .filter((name) => name.endsWith(".md"))
      .map((name) => path.posix.join(dir, name));
  return ["README.md", "bench/README.md", ...inDir("docs"), ...inDir("docs/adr")];
}

/** Markdown text with fenced code blocks and inline code removed, so that code is never read as a link. */
function prose(text: string): string {
  return text.replace(/^```[^\n]*\n[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a Markdown file offers: its headings' slugs, numbered as GitHub numbers repeats. */
function anchors(file: string): Set<string> {
  const text = readRepoFile(file).replace(/^```[^\n]*\n[\s\S]*?^```/gm, "");
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(m[1]);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

interface Link {
  from: string;
  target: string;
}

/** Every relative link ([text](target)) of a Markdown file; web addresses and mail links are left out. */
function relativeLinks(file: string): Link[] {
  const links: Link[] = [];
  for (const m of prose(readRepoFile(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1];
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    links.push({ from: file, target });
  }
  return links;
}

/** Why a link does not resolve, or undefined when it does. */
function brokenReason({ from, target }: Link): string | undefined {
  const [pathPart, anchor] = target.split("#", 2);
  const resolved = pathPart
    ? path.posix.normalize(path.posix.join(path.posix.dirname(from), pathPart))
    : from;
  const absolute = path.join(ROOT, resolved);
  if (!existsSync(absolute)) return `${resolved} does not exist`;
  if (anchor === undefined || anchor === "") return undefined;
  if (statSync(absolute).isDirectory() || !resolved.endsWith(".md"))
    return `#${anchor} on a file that is not Markdown`;
  return anchors(resolved).has(decodeURIComponent(anchor))
    ? undefined
    : `${resolved} has no heading #${anchor}`;
}

describe("documentation", () => {
  it("resolves every relative link and anchor in README.md, docs/ and bench/README.md", () => {
    const files = markdownFiles();
    const links = files.flatMap(relativeLinks);
    // The README alone links to every document under docs/; far fewer would mean the scan found nothing.
    expect(links.length).toBeGreaterThan(30);
    const broken = links.flatMap((link) => {
      const reason = brokenReason(link);
      return reason ? [`${link.from}: (${link.target}) ${reason}`] : [];
    });
    expect(broken).toEqual([]);
  });

  it("keeps the README short enough to read in ten minutes", () => {
    expect(Buffer.byteLength(readRepoFile("README.md"))).toBeLessThanOrEqual(15 * 1024);
  });
});
