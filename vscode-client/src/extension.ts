// The reachls extension: starts `reachls serve`, keeps its settings current, shows scan state.
import * as fs from "fs";
import * as vscode from "vscode";
import {
    DidChangeConfigurationNotification,
    DocumentSelector,
    DynamicFeature,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    ServerOptions,
    State,
    StaticFeature,
} from "vscode-languageclient/node";

import {
    PROBLEMS, SCAN_STATUS_METHOD, ScanProblem, ScanStatus, parseScanStatus, suggestMapping, unmappedPath,
} from "./scanStatus";
import { INSTALL_FROM_CHECKOUT, resolveServer } from "./server";
import {
    PathMappingsSetting, ReachlsConfig, configurationChange, initializationOptions, serverSettings, settingPath,
    untrustedSettings, withMapping,
} from "./settings";
import { StatusItem } from "./status";

const REPORT_URI = vscode.Uri.parse("reachls-report:/reachls%20report.txt");
// Settings the running server takes through didChangeConfiguration; `server.*` needs a restart.
const SERVER_SETTINGS = ["buildDirs", "threshold", "engine", "linker", "pathMappings", "severity", "discoveryDepth",
    "debounceSeconds", "allowWorkspaceLinker", "history", "historyBuilds", "codeLens"];
// The command of the server's function lenses: arguments (uri, position, locations) in protocol form.
const SHOW_REFERENCES = "reachls.showReferences";

/**
 * The server advertises `reachls.rescan` and `reachls.report` as LSP commands. The stock client
 * would register VS Code commands under those very ids, clashing with this extension's own (which
 * must exist, and explain, while the server is down), so its execute-command feature is left out
 * and the extension sends workspace/executeCommand itself.
 */
/**
 * A function lens as VS Code runs it: the server's `reachls.showReferences` (protocol JSON, for any
 * client) becomes `editor.action.showReferences` with VS Code's own Uri, Position and Locations.
 */
function showingReferences(lens: vscode.CodeLens, client: LanguageClient): vscode.CodeLens {
    const command = lens.command;
    if (command?.command !== SHOW_REFERENCES || command.arguments?.length !== 3) {
        return lens;
    }
    const [uri, position, locations] = command.arguments as [string, unknown, unknown[]];
    const convert = client.protocol2CodeConverter;
    lens.command = {
        title: command.title,
        command: "editor.action.showReferences",
        arguments: [convert.asUri(uri), convert.asPosition(position as never),
            locations.map((location) => convert.asLocation(location as never))],
    };
    return lens;
}

class ReachlsClient extends LanguageClient {
    override registerFeature(feature: StaticFeature | DynamicFeature<unknown>): void {
        if ("registrationType" in feature && feature.registrationType.method === ExecuteCommandRequest.method) {
            return;
        }
        super.registerFeature(feature);
    }
}

function workspaceFolders(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
}

function folderUri(folder: string | undefined): vscode.Uri | undefined {
    return folder === undefined ? undefined : vscode.Uri.file(folder);
}

function isFile(file: string): boolean {
    try {
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}

/** Where the commands write: the workspace's settings, or the user's when no folder is open. */
function settingsTarget(): vscode.ConfigurationTarget {
    return vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
}

function currentSettings() {
    const config = vscode.workspace.getConfiguration("reachls");
    const section: ReachlsConfig = {
        buildDirs: config.get("buildDirs"),
        threshold: config.get("threshold"),
        engine: config.get("engine"),
        linker: config.get("linker"),
        pathMappings: config.get("pathMappings"),
        severity: config.get("severity"),
        discoveryDepth: config.get("discoveryDepth"),
        debounceSeconds: config.get("debounceSeconds"),
        allowWorkspaceLinker: config.get("allowWorkspaceLinker"),
    };
    const settings = serverSettings(section, workspaceFolders());
    return vscode.workspace.isTrusted ? settings : untrustedSettings(settings);
}

/**
 * The documents the server is attached to: the languages the extension activates on (C, and the
 * assembly language ids of the highlighting extensions users have, listed once in package.json's
 * `onLanguage:` events), and `.S`/`.s`/`.h` files by name whatever language they were given.
 */
function documentSelector(activationEvents: readonly string[]): DocumentSelector {
    const languages = activationEvents.filter((event) => event.startsWith("onLanguage:"))
        .map((event) => event.slice("onLanguage:".length));
    return [...languages.map((language) => ({ scheme: "file", language })), { scheme: "file", pattern: "**/*.{S,s,h}" }];
}

class Extension implements vscode.Disposable {
    private client: ReachlsClient | undefined;
    private lifecycle: Promise<void> = Promise.resolve();
    private report = "";
    private readonly reportChanged = new vscode.EventEmitter<vscode.Uri>();
    readonly output = vscode.window.createOutputChannel("reachls");
    readonly status = new StatusItem();
    /** The last scan status from the server, and the problems already shown as a notification. */
    private scan: ScanStatus | undefined;
    private readonly notified = new Set<string>();
    /** The layout picture's webview while it is open (redrawn after each scan). */
    private layoutPanel: vscode.WebviewPanel | undefined;

    constructor(private readonly selector: DocumentSelector) {}

    /** Serialises starts and stops, so a restart never overlaps a start. */
    private queue(step: () => Promise<void>): Promise<void> {
        this.lifecycle = this.lifecycle.then(step, step);
        return this.lifecycle;
    }

    start(): Promise<void> {
        return this.queue(() => this.doStart());
    }

    restart(): Promise<void> {
        return this.queue(async () => {
            await this.doStop();
            await this.doStart();
        });
    }

    stop(): Promise<void> {
        return this.queue(() => this.doStop());
    }

    private async doStart(): Promise<void> {
        const config = vscode.workspace.getConfiguration("reachls.server");
        const server = await resolveServer({ path: config.get("path"), pythonPath: config.get("pythonPath") });
        if (!server.ok) {
            this.output.appendLine(`reachls: ${server.problem} Install it with: ${server.install}`);
            this.status.setProblem(server.problem);
            void this.explainMissingServer(server.problem, server.install);
            return;
        }
        const serverOptions: ServerOptions = {
            command: server.command,
            args: server.args, // no `transport`: the client would append `--stdio`
            options: { cwd: workspaceFolders()[0] },
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: this.selector,
            initializationOptions: initializationOptions(currentSettings()),
            outputChannel: this.output,
            middleware: {
                handleWorkDoneProgress: (token, params, next) => {
                    this.status.progress(token, params.kind);
                    next(token, params);
                },
                provideCodeLenses: async (document, token, next) => {
                    const lenses = await next(document, token);
                    return lenses?.map((lens) => showingReferences(lens, client));
                },
            },
        };
        this.output.appendLine(`reachls: starting ${server.command} ${server.args.join(" ")}`);
        if (!vscode.workspace.isTrusted) {
            this.output.appendLine("reachls: this workspace is not trusted: no linker runs, the linker-script model " +
                "places the sections (trust the workspace to relink with the build's linker)");
        }
        const client = new ReachlsClient("reachls", "reachls", serverOptions, clientOptions);
        client.onNotification(SCAN_STATUS_METHOD, (params: unknown) => {
            const scan = parseScanStatus(params);
            if (scan === undefined) {
                this.output.appendLine(`reachls: ${SCAN_STATUS_METHOD} with unexpected params: ${JSON.stringify(params)}`);
                return;
            }
            this.scan = scan;
            this.status.setScan(scan);
            if (this.layoutPanel !== undefined) {
                void this.showLayout(false);
            }
            scan.problems.forEach((problem) => void this.notifyOnce(problem));
        });
        client.onDidChangeState((event) => {
            if (event.newState === State.Running) {
                this.status.setProblem(undefined);
            } else if (event.newState === State.Stopped && this.client === client) {
                this.status.setProblem("the server stopped (see the server log).");
            }
        });
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            this.status.setProblem(message);
            void vscode.window.showErrorMessage(`reachls: the server did not start: ${message}`, "Show Server Log")
                .then((choice) => choice && this.output.show(true));
        }
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (client !== undefined) {
            try {
                if (client.needsStop()) {
                    await client.stop(5000);
                }
            } catch (error) {
                this.output.appendLine(`reachls: stopping the server: ${String(error)}`);
            }
        }
    }

    private async explainMissingServer(problem: string, install: string): Promise<void> {
        const choice = await vscode.window.showErrorMessage(
            `reachls: ${problem} Install it with \`${install}\` (from a source checkout: \`${INSTALL_FROM_CHECKOUT}\`) ` +
            "and run “reachls: Restart Server”, or set reachls.server.path or reachls.server.pythonPath.",
            "Open Settings", "Copy Install Command");
        if (choice === "Open Settings") {
            await vscode.commands.executeCommand("workbench.action.openSettings", "reachls.server");
        } else if (choice === "Copy Install Command") {
            await vscode.env.clipboard.writeText(install);
        }
    }

    /** A scan problem as a warning with the button that settles it, once per problem per session. */
    private async notifyOnce(problem: ScanProblem): Promise<void> {
        const key = `${problem.kind}\0${problem.buildDir ?? ""}`;
        if (this.notified.has(key)) {
            return;
        }
        this.notified.add(key);
        const { action, command, label } = PROBLEMS[problem.kind];
        const choice = await vscode.window.showWarningMessage(`reachls: ${problem.message || label}`, action);
        if (choice === action) {
            await vscode.commands.executeCommand(command);
        }
    }

    /** Asks for the build directory (a folder picker) and writes it to `reachls.buildDirs`. */
    async setBuildDirectory(): Promise<string | undefined> {
        const folders = workspaceFolders();
        const picked = await vscode.window.showOpenDialog({
            canSelectFolders: true, canSelectFiles: false, canSelectMany: false,
            openLabel: "Use as Build Directory", title: "reachls: the build directory (make O=…)",
            defaultUri: folderUri(folders[0]),
        });
        if (picked?.[0] === undefined) {
            return undefined;
        }
        const dir = settingPath(picked[0].fsPath, folders);
        await vscode.workspace.getConfiguration("reachls").update("buildDirs", [dir], settingsTarget());
        return dir;
    }

    /**
     * Asks for a build-machine path prefix (prefilled from the server's unmapped-sources problem)
     * and the workspace directory it stands for, and adds the pair to `reachls.pathMappings`.
     */
    async addPathMapping(): Promise<{ from: string; to: string } | undefined> {
        const folders = workspaceFolders();
        const unmapped = unmappedPath(this.scan?.problems ?? []);
        const suggested = unmapped === undefined ? undefined : suggestMapping(unmapped, folders, isFile);
        const from = (await vscode.window.showInputBox({
            title: "reachls: Add Path Mapping (1/2)",
            prompt: "A source path prefix as the build machine saw it (as the DWARF of vmlinux.o names it)",
            placeHolder: "/build/linux",
            value: suggested?.from ?? "",
            ignoreFocusOut: true,
            validateInput: (value) => value.trim() === "" ? "A path prefix, e.g. /build/linux" : undefined,
        }))?.trim();
        if (!from) {
            return undefined;
        }
        const picked = await vscode.window.showOpenDialog({
            canSelectFolders: true, canSelectFiles: false, canSelectMany: false,
            openLabel: "Map Here", title: `reachls: Add Path Mapping (2/2): the workspace directory for ${from}`,
            defaultUri: folderUri(suggested?.to ?? folders[0]),
        });
        if (picked?.[0] === undefined) {
            return undefined;
        }
        const to = settingPath(picked[0].fsPath, folders);
        const config = vscode.workspace.getConfiguration("reachls");
        const target = settingsTarget();
        const current = config.inspect<PathMappingsSetting>("pathMappings");
        const existing = target === vscode.ConfigurationTarget.Workspace ? current?.workspaceValue : current?.globalValue;
        await config.update("pathMappings", withMapping(existing, from, to), target);
        return { from, to };
    }

    /** Runs a command of the server; undefined (after saying why) when it is not running. */
    private async serverCommand(command: "reachls.rescan" | "reachls.report" | "reachls.picture"):
        Promise<string | undefined> {
        await this.lifecycle;
        if (!this.client?.isRunning()) {
            const choice = await vscode.window.showWarningMessage("reachls: the server is not running.",
                "Restart Server", "Show Server Log");
            if (choice === "Restart Server") {
                await this.restart();
            } else if (choice === "Show Server Log") {
                this.output.show(true);
            }
            return undefined;
        }
        const result: unknown = await this.client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [] });
        return typeof result === "string" ? result : undefined;
    }

    rescan(): Promise<string | undefined> {
        return this.serverCommand("reachls.rescan");
    }

    async showReport(): Promise<string | undefined> {
        const report = await this.serverCommand("reachls.report");
        if (report === undefined) {
            return undefined;
        }
        this.report = report;
        this.reportChanged.fire(REPORT_URI);
        const document = await vscode.workspace.openTextDocument(REPORT_URI);
        await vscode.window.showTextDocument(document, { preview: true });
        return report;
    }

    /**
     * The server's layout picture of the last scan (the page `reachls picture -o layout.html` writes) in a
     * webview that runs only the page's own script and loads nothing; a click on a reference asks, by
     * message, for its source line, which opens beside the picture.
     */
    async showLayout(reveal = true): Promise<void> {
        let html: string | undefined;
        try {
            html = await this.serverCommand("reachls.picture");
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            if (reveal) {
                void vscode.window.showWarningMessage(`reachls: no layout to show: ${message}`);
            }
            return;
        }
        if (html === undefined) {
            return;
        }
        if (this.layoutPanel === undefined) {
            const panel = vscode.window.createWebviewPanel("reachls.layout", "reachls layout", vscode.ViewColumn.Active,
                { enableScripts: true, localResourceRoots: [], enableFindWidget: true });
            panel.onDidDispose(() => this.layoutPanel = undefined);
            panel.webview.onDidReceiveMessage((message: unknown) => void this.openSource(message));
            this.layoutPanel = panel;
        } else if (reveal) {
            this.layoutPanel.reveal();
        }
        this.layoutPanel.webview.html = html;
    }

    /** `{command: "open", file, line}` from the layout webview: that line of that file, beside the picture. */
    private async openSource(message: unknown): Promise<void> {
        const { command, file, line } = (message ?? {}) as { command?: unknown; file?: unknown; line?: unknown };
        if (command !== "open" || typeof file !== "string" || typeof line !== "number" || !Number.isInteger(line) ||
            line < 1) {
            this.output.appendLine(`reachls: unexpected message from the layout view: ${JSON.stringify(message)}`);
            return;
        }
        const position = new vscode.Position(line - 1, 0);
        try {
            await vscode.window.showTextDocument(vscode.Uri.file(file), {
                viewColumn: vscode.ViewColumn.Beside, preview: false, selection: new vscode.Range(position, position),
            });
        } catch (error) {
            void vscode.window.showWarningMessage(`reachls: cannot open ${file}: ${String(error)}`);
        }
    }

    configurationChanged(event: vscode.ConfigurationChangeEvent): void {
        if (event.affectsConfiguration("reachls.server")) {
            void this.restart();
        } else if (SERVER_SETTINGS.some((key) => event.affectsConfiguration(`reachls.${key}`))) {
            this.sendSettings();
        }
    }

    /** The server's settings changed (or the workspace became trusted): tell the running server. */
    sendSettings(): void {
        if (this.client?.isRunning()) {
            void this.client.sendNotification(DidChangeConfigurationNotification.type,
                configurationChange(currentSettings()));
        }
    }

    reportProvider(): vscode.TextDocumentContentProvider {
        return { onDidChange: this.reportChanged.event, provideTextDocumentContent: () => this.report };
    }

    dispose(): void {
        this.status.dispose();
        this.reportChanged.dispose();
        this.output.dispose();
    }
}

let extension: Extension | undefined;

export function activate(context: vscode.ExtensionContext): void {
    const ext = new Extension(documentSelector((context.extension.packageJSON as { activationEvents: string[] })
        .activationEvents));
    extension = ext;
    context.subscriptions.push(
        ext,
        vscode.workspace.registerTextDocumentContentProvider(REPORT_URI.scheme, ext.reportProvider()),
        vscode.commands.registerCommand("reachls.rescan", () => ext.rescan()),
        vscode.commands.registerCommand("reachls.showReport", () => ext.showReport()),
        vscode.commands.registerCommand("reachls.showLayout", () => ext.showLayout()),
        vscode.commands.registerCommand("reachls.restartServer", () => ext.restart()),
        vscode.commands.registerCommand("reachls.showServerLog", () => ext.output.show(true)),
        vscode.commands.registerCommand("reachls.setBuildDirectory", () => ext.setBuildDirectory()),
        vscode.commands.registerCommand("reachls.addPathMapping", () => ext.addPathMapping()),
        vscode.workspace.onDidChangeConfiguration((event) => ext.configurationChanged(event)),
        // Trusted now: the build's own linker may relink.
        vscode.workspace.onDidGrantWorkspaceTrust(() => ext.sendSettings()),
        // The server learns its workspace roots (where it looks for build dirs) at start-up.
        vscode.workspace.onDidChangeWorkspaceFolders(() => void ext.restart()),
    );
    void ext.start();
}

export async function deactivate(): Promise<void> {
    await extension?.stop();
    extension = undefined;
}
