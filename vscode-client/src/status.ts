// The status bar item: the reachls diagnostics of the last scan, a spinner while one runs.
import * as vscode from "vscode";

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

    constructor() {
        this.item.name = "reachls";
        this.listener = vscode.languages.onDidChangeDiagnostics(() => this.render());
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
        }
        this.render();
    }

    private render(): void {
        if (this.problem !== undefined) {
            this.item.text = "$(circle-slash) reachls";
            this.item.tooltip = `reachls is not running: ${this.problem}\nClick to show the server log.`;
            this.item.command = "reachls.showServerLog";
            this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
            return;
        }
        const { errors, warnings } = countDiagnostics();
        const scanning = this.scans.size > 0;
        this.item.text = `${scanning ? "$(sync~spin)" : "$(pulse)"} reachls $(error) ${errors} $(warning) ${warnings}`;
        this.item.tooltip = (scanning ? "reachls: scanning…\n" : "") +
            `${errors} error(s) (overflows, by default) and ${warnings} warning(s) (at risk) from the last scan.\n` +
            "Click for the report.";
        this.item.command = "reachls.showReport";
        this.item.backgroundColor = errors > 0 ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    }

    dispose(): void {
        this.listener.dispose();
        this.item.dispose();
    }
}
