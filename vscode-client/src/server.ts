// Which process to start as the reachls server. No `vscode` import: the Node tests use it too.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface ServerCommand {
    command: string;
    args: string[];
}

export type Resolution =
    | ({ ok: true } & ServerCommand)
    | { ok: false; problem: string; install: string };

export const INSTALL = "pip install reachls";
export const INSTALL_FROM_CHECKOUT = "pip install -e <path of your reachls checkout>";
const MODULE_ARGS = ["-m", "reachls.cli", "serve"];

function isExecutable(file: string): boolean {
    try {
        fs.accessSync(file, fs.constants.X_OK);
        return fs.statSync(file).isFile();
    } catch {
        return false;
    }
}

/** An executable named in a setting or on PATH: absolute path, or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    if (name === "~" || name.startsWith("~/")) {
        name = path.join(os.homedir(), name.slice(1));
    }
    if (name.includes("/") || name.includes(path.sep)) {
        const file = path.resolve(name);
        return isExecutable(file) ? file : undefined;
    }
    const extensions = process.platform === "win32" ? ["", ".exe", ".cmd"] : [""];
    for (const dir of (env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
        for (const extension of extensions) {
            const file = path.join(dir, name + extension);
            if (isExecutable(file)) {
                return file;
            }
        }
    }
    return undefined;
}

function canImportReachls(python: string): Promise<boolean> {
    return new Promise((resolve) => {
        execFile(python, ["-c", "import reachls.cli"], { timeout: 20000 }, (error) => resolve(!error));
    });
}

/**
 * `reachls.server.path` (run as `PATH serve`) wins; then `reachls.server.pythonPath` (run as
 * `PYTHON -m reachls.cli serve`); with neither, `reachls` on PATH, then a `python3` on PATH that
 * can import reachls. A failure says what is missing and how to install it.
 */
export async function resolveServer(config: { path?: string; pythonPath?: string } = {},
                                    env: NodeJS.ProcessEnv = process.env): Promise<Resolution> {
    const configuredPath = config.path?.trim();
    const configuredPython = config.pythonPath?.trim();
    if (configuredPath) {
        const executable = findExecutable(configuredPath, env);
        return executable
            ? { ok: true, command: executable, args: ["serve"] }
            : { ok: false, problem: `reachls.server.path is "${configuredPath}", which is not an executable file.`,
                install: INSTALL };
    }
    if (configuredPython) {
        const python = findExecutable(configuredPython, env);
        if (!python) {
            return { ok: false, problem: `reachls.server.pythonPath is "${configuredPython}", which is not an ` +
                     "executable file.", install: INSTALL };
        }
        return await canImportReachls(python)
            ? { ok: true, command: python, args: [...MODULE_ARGS] }
            : { ok: false, problem: `${python} cannot import reachls.`, install: `${python} -m ${INSTALL}` };
    }
    const executable = findExecutable("reachls", env);
    if (executable) {
        return { ok: true, command: executable, args: ["serve"] };
    }
    const python = findExecutable("python3", env);
    if (python && await canImportReachls(python)) {
        return { ok: true, command: python, args: [...MODULE_ARGS] };
    }
    return { ok: false, problem: "the reachls language server is not installed: there is no `reachls` on PATH.",
             install: INSTALL };
}
