// The `reachls.*` settings → what the server reads (initializationOptions, and the `reachls`
// section of workspace/didChangeConfiguration). Pure: no `vscode` import, so the Node tests run
// the exact mapping the extension uses.
import * as os from "os";
import * as path from "path";

export const STATUSES = ["overflow", "veneer", "at-risk", "fragile"] as const;
export type Status = (typeof STATUSES)[number];

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
    trace?: { server?: string };
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

/**
 * What the server's `read_settings` reads: the user's values as they are, with paths expanded and
 * the mappings as a list. The server checks every value against its settings schema (which
 * package.json's contribution is tested against), refuses a bad one by name and keeps its
 * previous value; a missing one takes the server's default. Nothing is checked or defaulted here,
 * so no second copy of the schema can drift.
 */
export interface ServerSettings {
    buildDirs?: unknown;
    threshold?: unknown;
    engine?: unknown;
    linker?: unknown;
    pathMappings: PathMapping[];
    severity?: unknown;
    discoveryDepth?: unknown;
    debounceSeconds?: unknown;
    allowWorkspaceLinker?: unknown;
    history?: unknown;
    historyBuilds?: unknown;
    codeLens?: unknown;
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

/** The client's own settings (`reachls.server.*`, `reachls.trace.*`), which the server never reads. */
const CLIENT_ONLY = new Set(["server", "trace"]);

export function serverSettings(config: ReachlsConfig, workspaceFolders: readonly string[],
                               home = os.homedir()): ServerSettings {
    const { buildDirs, threshold, pathMappings } = config;
    return {
        ...Object.fromEntries(Object.entries(config).filter(([key]) => !CLIENT_ONLY.has(key))),
        // A blank entry is what the Settings editor leaves behind an emptied row, not a path.
        buildDirs: Array.isArray(buildDirs)
            ? buildDirs.filter((dir) => typeof dir !== "string" || dir.trim() !== "")
                .map((dir) => typeof dir === "string" ? expandPath(dir.trim(), workspaceFolders, home) : dir)
            : buildDirs,
        // Accept 75 as well as 0.75, as the CLI accepts "75%".
        threshold: typeof threshold === "number" && threshold > 1 && threshold <= 100 ? threshold / 100 : threshold,
        pathMappings: mappingList(pathMappings)
            .map((m) => ({ from: m.from, to: expandPath(m.to, workspaceFolders, home) })),
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
