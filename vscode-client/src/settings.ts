// The `reachls.*` settings → what the server reads (initializationOptions, and the `reachls`
// section of workspace/didChangeConfiguration). Pure: no `vscode` import, so the Node tests run
// the exact mapping the extension uses.
import * as os from "os";
import * as path from "path";

export const STATUSES = ["overflow", "veneer", "at-risk", "fragile"] as const;
export const SEVERITIES = ["error", "warning", "information", "hint"] as const;
export const ENGINES = ["auto", "relink", "model"] as const;

export type Status = (typeof STATUSES)[number];
export type Severity = (typeof SEVERITIES)[number];
export type Engine = (typeof ENGINES)[number];

export interface PathMapping {
    from: string;
    to: string;
}

/** The `reachls` configuration section as VS Code returns it (dotted keys become nested objects). */
export interface ReachlsConfig {
    server?: { path?: string; pythonPath?: string };
    buildDirs?: string[];
    threshold?: number;
    engine?: string;
    pathMappings?: PathMapping[];
    severity?: Partial<Record<string, string>>;
    discoveryDepth?: number;
    debounceSeconds?: number;
}

/** What the server's `Settings.from_json` reads. */
export interface ServerSettings {
    buildDirs: string[];
    threshold: number;
    engine: Engine;
    pathMappings: PathMapping[];
    severity: Record<Status, Severity>;
    discoveryDepth: number;
    debounceSeconds: number;
}

export const DEFAULTS: ServerSettings = {
    buildDirs: [],
    threshold: 0.75,
    engine: "auto",
    pathMappings: [],
    severity: { overflow: "error", veneer: "information", "at-risk": "warning", fragile: "information" },
    discoveryDepth: 4,
    debounceSeconds: 0.5,
};

function isOneOf<T extends string>(values: readonly T[], value: unknown): value is T {
    return typeof value === "string" && (values as readonly string[]).includes(value);
}

function finite(value: unknown, fallback: number, min = 0): number {
    return typeof value === "number" && Number.isFinite(value) && value >= min ? value : fallback;
}

/**
 * A path from a setting as the server should see it: `${workspaceFolder}`, `${workspaceFolder:name}`,
 * `${userHome}` and a leading `~` expanded, relative paths taken from the first workspace folder.
 */
export function expandPath(value: string, workspaceFolders: readonly string[], home = os.homedir()): string {
    const first = workspaceFolders[0];
    let expanded = value
        .replace(/\$\{workspaceFolder:([^}]+)\}/g, (whole, name: string) =>
            workspaceFolders.find((folder) => path.basename(folder) === name) ?? whole)
        .replace(/\$\{workspaceFolder\}/g, (whole) => first ?? whole)
        .replace(/\$\{userHome\}/g, home);
    if (expanded === "~" || expanded.startsWith("~/")) {
        expanded = path.join(home, expanded.slice(1));
    }
    if (!path.isAbsolute(expanded) && first !== undefined) {
        expanded = path.resolve(first, expanded);
    }
    return expanded;
}

export function serverSettings(config: ReachlsConfig, workspaceFolders: readonly string[],
                               home = os.homedir()): ServerSettings {
    const severity = { ...DEFAULTS.severity };
    for (const status of STATUSES) {
        const value = config.severity?.[status];
        if (isOneOf(SEVERITIES, value)) {
            severity[status] = value;
        }
    }
    const threshold = finite(config.threshold, DEFAULTS.threshold);
    return {
        buildDirs: (config.buildDirs ?? [])
            .filter((dir) => typeof dir === "string" && dir.trim() !== "")
            .map((dir) => expandPath(dir.trim(), workspaceFolders, home)),
        // Accept 75 as well as 0.75, as the CLI accepts "75%".
        threshold: threshold > 1 && threshold <= 100 ? threshold / 100 : Math.min(threshold, 1),
        engine: isOneOf(ENGINES, config.engine) ? config.engine : DEFAULTS.engine,
        pathMappings: (config.pathMappings ?? [])
            .filter((m) => m && typeof m.from === "string" && typeof m.to === "string" && m.from !== "")
            .map((m) => ({ from: m.from, to: expandPath(m.to, workspaceFolders, home) })),
        severity,
        discoveryDepth: Math.floor(finite(config.discoveryDepth, DEFAULTS.discoveryDepth)),
        debounceSeconds: finite(config.debounceSeconds, DEFAULTS.debounceSeconds),
    };
}

/** The params of workspace/didChangeConfiguration: the server reads `settings.reachls`. */
export function configurationChange(settings: ServerSettings): { settings: { reachls: ServerSettings } } {
    return { settings: { reachls: settings } };
}
