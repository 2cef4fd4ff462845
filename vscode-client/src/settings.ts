// The `reachls.*` settings → what the server reads (initializationOptions, and the `reachls`
// section of workspace/didChangeConfiguration). Pure: no `vscode` import, so the Node tests run
// the exact mapping the extension uses.
import * as os from "os";
import * as path from "path";

export const STATUSES = ["overflow", "veneer", "at-risk", "fragile"] as const;
export const SEVERITIES = ["error", "warning", "information", "hint"] as const;
export const ENGINES = ["auto", "relink", "model"] as const;
export const LINKERS = ["auto", "lld", "gnu"] as const;

export type Status = (typeof STATUSES)[number];
export type Severity = (typeof SEVERITIES)[number];
export type Engine = (typeof ENGINES)[number];
export type Linker = (typeof LINKERS)[number];

export interface PathMapping {
    from: string;
    to: string;
}

/**
 * `reachls.pathMappings`: build-machine prefix → workspace directory, an object so the Settings
 * editor can edit it as a table; the list of `{from, to}` of earlier versions is still read.
 */
export type PathMappingsSetting = Record<string, string> | PathMapping[];

/** The `reachls` configuration section as VS Code returns it (dotted keys become nested objects). */
export interface ReachlsConfig {
    server?: { path?: string; pythonPath?: string };
    buildDirs?: string[];
    threshold?: number;
    engine?: string;
    linker?: string;
    pathMappings?: PathMappingsSetting;
    severity?: Partial<Record<string, string>>;
    discoveryDepth?: number;
    debounceSeconds?: number;
    allowWorkspaceLinker?: boolean;
    history?: boolean;
    historyBuilds?: number;
    codeLens?: boolean;
}

/** What the server's `read_settings` reads. */
export interface ServerSettings {
    buildDirs: string[];
    threshold: number;
    engine: Engine;
    linker: Linker;
    pathMappings: PathMapping[];
    severity: Record<Status, Severity>;
    discoveryDepth: number;
    debounceSeconds: number;
    allowWorkspaceLinker: boolean;
    history: boolean;
    historyBuilds: number;
    codeLens: boolean;
}

export const DEFAULTS: ServerSettings = {
    buildDirs: [],
    threshold: 0.75,
    engine: "auto",
    linker: "auto",
    pathMappings: [],
    severity: { overflow: "error", veneer: "information", "at-risk": "warning", fragile: "information" },
    discoveryDepth: 4,
    debounceSeconds: 0.5,
    allowWorkspaceLinker: false,
    history: true,
    historyBuilds: 100,
    codeLens: false,
};

/** The most builds a history keeps (the server's MAX_KEEP). */
export const MAX_HISTORY_BUILDS = 100000;

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

/** The mappings of the setting, in either form, as `{from, to}` pairs (malformed entries left out). */
export function mappingList(setting: PathMappingsSetting | undefined): PathMapping[] {
    const pairs: unknown[] = Array.isArray(setting) ? setting
        : setting && typeof setting === "object" ? Object.entries(setting).map(([from, to]) => ({ from, to })) : [];
    return pairs.filter((m): m is PathMapping => typeof m === "object" && m !== null &&
        typeof (m as PathMapping).from === "string" && typeof (m as PathMapping).to === "string" &&
        (m as PathMapping).from !== "");
}

/** The setting with `from` → `to` added (or replaced), in the object form whatever form it had. */
export function withMapping(setting: PathMappingsSetting | undefined, from: string, to: string): Record<string, string> {
    const mappings = Object.fromEntries(mappingList(setting).map((m) => [m.from, m.to]));
    return { ...mappings, [from]: to };
}

/**
 * A directory as a setting names it: `${workspaceFolder}/…` when it lies inside the first
 * workspace folder (so the setting works in another checkout), the absolute path otherwise.
 */
export function settingPath(dir: string, workspaceFolders: readonly string[]): string {
    const first = workspaceFolders[0];
    if (first === undefined) {
        return dir;
    }
    const relative = path.relative(first, dir);
    if (relative === "") {
        return "${workspaceFolder}";
    }
    const outside = relative === ".." || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
    return outside ? dir : `\${workspaceFolder}/${relative.split(path.sep).join("/")}`;
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
        linker: isOneOf(LINKERS, config.linker) ? config.linker : DEFAULTS.linker,
        pathMappings: mappingList(config.pathMappings)
            .map((m) => ({ from: m.from, to: expandPath(m.to, workspaceFolders, home) })),
        severity,
        discoveryDepth: Math.floor(finite(config.discoveryDepth, DEFAULTS.discoveryDepth)),
        debounceSeconds: finite(config.debounceSeconds, DEFAULTS.debounceSeconds),
        allowWorkspaceLinker: config.allowWorkspaceLinker === true,
        history: config.history !== false,
        historyBuilds: Math.min(Math.floor(finite(config.historyBuilds, DEFAULTS.historyBuilds, 1)), MAX_HISTORY_BUILDS),
        codeLens: config.codeLens === true,
    };
}

/**
 * The settings in a workspace the user has not trusted: sections placed by the linker-script
 * model, so no linker runs at all (a build's link command may name a program inside the workspace).
 */
export function untrustedSettings(settings: ServerSettings): ServerSettings {
    return { ...settings, engine: "model", allowWorkspaceLinker: false };
}

/**
 * The initializationOptions: the settings, and `statusNotifications` (the extension shows scan
 * problems in its status item, so the server sends reachls/scanStatus instead of showMessage).
 */
export function initializationOptions(settings: ServerSettings): ServerSettings & { statusNotifications: true } {
    return { ...settings, statusNotifications: true };
}

/** The params of workspace/didChangeConfiguration: the server reads `settings.reachls`. */
export function configurationChange(settings: ServerSettings): { settings: { reachls: ServerSettings } } {
    return { settings: { reachls: settings } };
}
