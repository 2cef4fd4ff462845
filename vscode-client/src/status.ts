// The status bar item: what the last scan found (from the server's reachls/scanStatus), a spinner
// while one runs, and a warning-coloured item, with the command that settles it, when a scan
// could not look where it should.
import * as vscode from "vscode";

import { PROBLEMS, ScanStatus, plural, statusText, statusTooltip } from "./scanStatus";

export const SOURCE = "reachls";

export interface Counts {
    errors: number;
    warnings: number;
}

export function countDiagnostics(): Counts {
    const counts = { errors: 0, warnings: 0 };
    for (const [, diagnostics] of vscode.languages.getDiagnostics()) {
        for (const diagnostic of diagnostics) {
            if (diagnostic.source !== SOURCE) {
                continue;
            }
            if (diagnostic.severity === vscode.DiagnosticSeverity.Error) {
                counts.errors++;
            } else if (diagnostic.severity === vscode.DiagnosticSeverity.Warning) {
                counts.warnings++;
            }
        }
    }
    return counts;
}

export class StatusItem implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem("reachls.status", vscode.StatusBarAlignment.Left, 10);
    private readonly scans = new Set<string | number>();
    private readonly listener: vscode.Disposable;
    private problem: string | undefined;
    /** The last scan status the server sent; undefined until the first (or from a server that sends none). */
    private scan: ScanStatus | undefined;

    constructor() {
        this.item.name = "reachls";
        this.listener = vscode.languages.onDidChangeDiagnostics(() => {
            if (this.scan === undefined) {
                this.render();
            }
        });
        this.render();
        this.item.show();
    }

    /** A work-done progress of the server began or ended. */
    progress(token: string | number, kind: "begin" | "report" | "end"): void {
        if (kind === "begin") {
            this.scans.add(token);
        } else if (kind === "end") {
            this.scans.delete(token);
        }
        this.render();
    }

    /** The server is not running (undefined: it is). */
    setProblem(problem: string | undefined): void {
        this.problem = problem;
        if (problem !== undefined) {
            this.scans.clear();
            this.scan = undefined;
        }
        this.render();
    }

    /** A scan finished; its status replaces the diagnostics count for good. */
    setScan(scan: ScanStatus): void {
        this.scan = scan;
        this.render();
    }

    private render(): void {
        const spinner = this.scans.size > 0 || this.scan?.scanning === true ? "$(sync~spin) " : "";
        if (this.problem !== undefined) {
            this.item.text = "$(circle-slash) reachls";
            this.item.tooltip = `reachls is not running: ${this.problem}\nClick to show the server log.`;
            this.item.command = "reachls.showServerLog";
            this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
        } else if (this.scan !== undefined) {
            const problem = this.scan.problems[0];
            this.item.text = spinner + statusText(this.scan);
            this.item.tooltip = statusTooltip(this.scan);
            this.item.command = problem ? PROBLEMS[problem.kind].command : "reachls.showReport";
            const background = problem ? "statusBarItem.warningBackground"
                : this.scan.counts.overflow > 0 ? "statusBarItem.errorBackground" : undefined;
            this.item.backgroundColor = background && new vscode.ThemeColor(background);
        } else {
            // No scan status yet: the diagnostics are all there is, and are called what they are.
            const { errors, warnings } = countDiagnostics();
            this.item.text = `${spinner}reachls $(error) ${plural(errors, "error")} $(warning) ${plural(warnings, "warning")}`;
            this.item.tooltip = `${spinner ? "reachls: scanning…\n" : ""}reachls diagnostics: ${plural(errors, "error")} ` +
                `and ${plural(warnings, "warning")} (an overflow is marked at its site and at its target).\n` +
                "Click for the report.";
            this.item.command = "reachls.showReport";
            this.item.backgroundColor = errors > 0 ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
        }
    }

    dispose(): void {
        this.listener.dispose();
        this.item.dispose();
    }
}
