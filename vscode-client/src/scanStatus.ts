// The server's `reachls/scanStatus` notification (sent after every scan) → what the status bar
// item says. Pure: no `vscode` import, so the Node tests check the exact wording the item shows.
import { STATUSES, Status } from "./settings";

export const SCAN_STATUS_METHOD = "reachls/scanStatus";

export const PROBLEM_KINDS = ["no-build-dir", "no-artefact", "unreadable", "unmapped-sources"] as const;
export type ProblemKind = (typeof PROBLEM_KINDS)[number];

export interface ScanProblem {
    kind: ProblemKind;
    message: string;
    buildDir: string | null;
}

export interface Artefact {
    buildDir: string;
    path: string;
    /** Seconds since the epoch, as the server's os.stat gives it. */
    mtime: number;
}

export interface ScanStatus {
    buildDirs: string[];
    scanning: boolean;
    /** References per status (not diagnostics: an overflow's target marker is not counted). */
    counts: Record<Status, number>;
    unchecked: number;
    problems: ScanProblem[];
    artefacts: Artefact[];
}

/** What a problem is called in the status bar, and the command that settles it. */
export const PROBLEMS: Record<ProblemKind, { label: string; command: string; action: string }> = {
    "no-build-dir": { label: "no build dir", command: "reachls.setBuildDirectory", action: "Set Build Directory…" },
    "no-artefact": { label: "no vmlinux.o or vmlinux", command: "reachls.setBuildDirectory",
                     action: "Set Build Directory…" },
    "unreadable": { label: "unreadable build artefact", command: "reachls.showServerLog", action: "Show Server Log" },
    "unmapped-sources": { label: "sources not in the workspace", command: "reachls.addPathMapping",
                          action: "Add Path Mapping…" },
};

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function count(value: unknown): number {
    return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}

function strings(value: unknown): string[] {
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

/** The notification's params, checked field by field; undefined when they are not a scan status. */
export function parseScanStatus(params: unknown): ScanStatus | undefined {
    if (!isRecord(params) || !isRecord(params.counts)) {
        return undefined;
    }
    const counts = params.counts;
    const problems = (Array.isArray(params.problems) ? params.problems : []).filter(isRecord)
        .filter((p) => typeof p.kind === "string" && (PROBLEM_KINDS as readonly string[]).includes(p.kind))
        .map((p): ScanProblem => ({
            kind: p.kind as ProblemKind,
            message: typeof p.message === "string" ? p.message : "",
            buildDir: typeof p.buildDir === "string" ? p.buildDir : null,
        }));
    const artefacts = (Array.isArray(params.artefacts) ? params.artefacts : []).filter(isRecord)
        .filter((a) => typeof a.path === "string" && typeof a.mtime === "number")
        .map((a): Artefact => ({ buildDir: typeof a.buildDir === "string" ? a.buildDir : "",
                                 path: a.path as string, mtime: a.mtime as number }));
    return {
        buildDirs: strings(params.buildDirs),
        scanning: params.scanning === true,
        counts: Object.fromEntries(STATUSES.map((status) => [status, count(counts[status])])) as Record<Status, number>,
        unchecked: count(params.unchecked),
        problems,
        artefacts,
    };
}

export function plural(n: number, singular: string): string {
    return `${n} ${singular}${n === 1 ? "" : "s"}`;
}

/** What each status means, for the tooltip. */
const STATUS_MEANINGS: Record<Status, string> = {
    overflow: "out of reach, the link fails",
    veneer: "bridged by a linker veneer",
    "at-risk": "close to the end of their reach",
    fragile: "a link-order change away from out of reach",
};

/** The item's text: the overflows and the references at risk, or the first problem in words. */
export function statusText(status: ScanStatus): string {
    const problem = status.problems[0];
    if (problem !== undefined) {
        const more = status.problems.length > 1 ? ` (+${status.problems.length - 1})` : "";
        return `$(warning) reachls: ${PROBLEMS[problem.kind].label}${more}`;
    }
    const { overflow, "at-risk": atRisk } = status.counts;
    return `reachls $(error) ${plural(overflow, "overflow")} $(warning) ${atRisk} at risk`;
}

function clock(seconds: number): string {
    return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** The tooltip: every count with what it counts, the build dirs and when their artefacts were built. */
export function statusTooltip(status: ScanStatus): string {
    const lines = status.problems.map((p) => `⚠ ${p.message || PROBLEMS[p.kind].label}`);
    lines.push("References found by the last scan:");
    for (const name of STATUSES) {
        lines.push(`  ${name}: ${plural(status.counts[name], "reference")} (${STATUS_MEANINGS[name]})`);
    }
    if (status.unchecked > 0) {
        lines.push(`  ${plural(status.unchecked, "reference")} not checked (see the report)`);
    }
    lines.push(status.buildDirs.length ? "Build directories:" : "No build directory.");
    for (const dir of status.buildDirs) {
        const built = status.artefacts.filter((a) => a.buildDir === dir);
        lines.push(`  ${dir}`, ...built.map((a) => `    ${a.path}, built ${clock(a.mtime)}`));
    }
    const problem = status.problems[0];
    lines.push(problem ? `Click: ${PROBLEMS[problem.kind].action}` : "Click for the report.");
    return lines.join("\n");
}

/** The build machine's path an unmapped-sources message names (its first absolute path), if any. */
export function unmappedPath(problems: readonly ScanProblem[]): string | undefined {
    const message = problems.find((p) => p.kind === "unmapped-sources")?.message ?? "";
    const found = /(?:^|[\s"'`(])(\/[^\s"'`,;:)]+)/.exec(message);
    return found?.[1]?.replace(/[.]+$/, "");
}

/**
 * The mapping that puts a build machine's source file onto the workspace: the longest tail of
 * `file` that is a file under a workspace folder gives the folder (`to`) and the rest of `file`
 * (`from`); without one, `file`'s directory and no folder.
 */
export function suggestMapping(file: string, workspaceFolders: readonly string[],
                               isFile: (candidate: string) => boolean): { from: string; to?: string } {
    const parts = file.split("/");
    for (let start = 1; start < parts.length - 1; start++) {
        const tail = parts.slice(start).join("/");
        const folder = workspaceFolders.find((root) => isFile(`${root}/${tail}`));
        if (folder !== undefined) {
            return { from: parts.slice(0, start).join("/") || "/", to: folder };
        }
    }
    return { from: parts.slice(0, -1).join("/") || "/" };
}
