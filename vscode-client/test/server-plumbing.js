#!/usr/bin/env node
// Start-up and settings plumbing of the extension against the real server, without VS Code:
// the server is found and started by the extension's own resolveServer (out/server.js), its
// initializationOptions and didChangeConfiguration params come from the extension's own
// settings mapping (out/settings.js), and what comes back is checked.
//
//   node test/server-plumbing.js TREE PYTHON     (TREE: the example tree, built; see tests/)
//
// Prints one line per check and "N passed, 0 failed" at the end; exits 1 on the first failure.
"use strict";

const assert = require("assert");
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");
const { spawn } = require("child_process");
const rpc = require("vscode-languageserver-protocol/node");

const { resolveServer } = require("../out/server.js");
const {
    serverSettings, configurationChange, initializationOptions, settingPath, untrustedSettings, withMapping,
} = require("../out/settings.js");
const { parseScanStatus, statusText, statusTooltip, suggestMapping, unmappedPath } = require("../out/scanStatus.js");

const [tree, python] = process.argv.slice(2);
if (!tree || !python) {
    console.error("usage: node test/server-plumbing.js TREE PYTHON");
    process.exit(2);
}
const ENTRY = path.join(tree, "arch/arm64/kvm/hyp/entry.S");
const entryUri = pathToFileURL(ENTRY).href;
const ERROR = 1;
const WARNING = 2;
let passed = 0;

function check(name, fn) {
    return Promise.resolve().then(fn).then(() => {
        passed++;
        console.log(`ok ${passed} - ${name}`);
    });
}

function waitFor(what, predicate, timeoutMs = 90000) {
    return new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = () => {
            const value = predicate();
            if (value) {
                resolve(value);
            } else if (Date.now() - started > timeoutMs) {
                reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`));
            } else {
                setTimeout(poll, 50);
            }
        };
        poll();
    });
}

async function main() {
    // The settings a user would write, as VS Code hands them over (dotted keys nested).
    const userSettings = {
        buildDirs: ["${workspaceFolder}/out/overflow"],
        threshold: 75,
        engine: "relink",
        linker: "lld",
        severity: { overflow: "error" },
        pathMappings: { "/build/linux": ".", "": "/ignored" },
    };
    const settings = serverSettings(userSettings, [tree]);

    await check("settings → initializationOptions", () => {
        assert.deepStrictEqual(settings.buildDirs, [path.join(tree, "out/overflow")]);
        assert.strictEqual(settings.threshold, 0.75);
        assert.strictEqual(settings.engine, "relink");
        assert.deepStrictEqual(settings.severity, { overflow: "error" });
        // Passed as written: the server checks each value against its schema and names a bad one.
        assert.deepStrictEqual(serverSettings({ severity: { "at-risk": "bogus" } }, [tree]).severity,
            { "at-risk": "bogus" });
        assert.deepStrictEqual(settings.pathMappings, [{ from: "/build/linux", to: tree }]);
        assert.strictEqual(settings.linker, "lld");
        assert.strictEqual(serverSettings({ linker: "bfd" }, [tree]).linker, "bfd");
        assert.strictEqual(settings.allowWorkspaceLinker, undefined);
        assert.ok(!("server" in settings) && !("trace" in settings));
        assert.strictEqual(serverSettings({ allowWorkspaceLinker: true }, [tree]).allowWorkspaceLinker, true);
        const asked = serverSettings({ history: false, historyBuilds: 7, codeLens: true }, [tree]);
        assert.deepStrictEqual([asked.history, asked.historyBuilds, asked.codeLens], [false, 7, true]);
    });

    await check("an untrusted workspace: the model engine, no linker from the workspace", () => {
        const asked = serverSettings({ ...userSettings, allowWorkspaceLinker: true }, [tree]);
        assert.deepStrictEqual(untrustedSettings(asked), { ...asked, engine: "model", allowWorkspaceLinker: false });
    });

    await check("path mappings: the list form of earlier versions is still read, and added to", () => {
        const listed = [{ from: "/build/linux", to: "${workspaceFolder}" }, { to: "/no/from" }];
        assert.deepStrictEqual(serverSettings({ pathMappings: listed }, [tree]).pathMappings,
            [{ from: "/build/linux", to: tree }]);
        assert.deepStrictEqual(withMapping(listed, "/ci/src", "${workspaceFolder}/linux"),
            { "/build/linux": "${workspaceFolder}", "/ci/src": "${workspaceFolder}/linux" });
    });

    await check("a picked directory is written relative to the workspace folder when inside it", () => {
        assert.strictEqual(settingPath(path.join(tree, "out", "overflow"), [tree]), "${workspaceFolder}/out/overflow");
        assert.strictEqual(settingPath(tree, [tree]), "${workspaceFolder}");
        assert.strictEqual(settingPath(`${tree}-build`, [tree]), `${tree}-build`);
        assert.strictEqual(settingPath(path.dirname(tree), [tree]), path.dirname(tree));
    });

    await check("the status item says what it counts, and each problem in words", () => {
        const counts = { overflow: 2, veneer: 5, "at-risk": 1, fragile: 0 };
        const scan = parseScanStatus({ buildDirs: ["/b"], scanning: false, counts, unchecked: 3, problems: [],
                                       artefacts: [{ buildDir: "/b", path: "/b/vmlinux.o", mtime: 1700000000.5 }] });
        assert.strictEqual(statusText(scan), "reachls $(error) 2 overflows $(warning) 1 at risk");
        assert.strictEqual(statusText({ ...scan, counts: { ...counts, overflow: 1 } }),
            "reachls $(error) 1 overflow $(warning) 1 at risk");
        const tooltip = statusTooltip(scan);
        for (const line of ["overflow: 2 references", "veneer: 5 references", "at-risk: 1 reference (",
                            "fragile: 0 references", "3 references not checked", "/b/vmlinux.o, built "]) {
            assert.ok(tooltip.includes(line), `${line} not in ${tooltip}`);
        }
        const unmapped = { kind: "unmapped-sources", buildDir: "/b",
                           message: "DWARF names /build/linux/arch/arm64/kvm/hyp/entry.S, which maps to no workspace file." };
        const lost = parseScanStatus({ buildDirs: [], counts: {}, problems: [
            { kind: "no-build-dir", message: "no build directory found", buildDir: null }, unmapped, { kind: "bogus" }] });
        assert.strictEqual(statusText(lost), "$(warning) reachls: no build dir (+1)");
        assert.strictEqual(unmappedPath(lost.problems), "/build/linux/arch/arm64/kvm/hyp/entry.S");
        assert.deepStrictEqual(suggestMapping(unmappedPath(lost.problems), ["/elsewhere", tree], fs.existsSync),
            { from: "/build/linux", to: tree });
        assert.deepStrictEqual(suggestMapping("/build/linux/no/such.c", [tree], fs.existsSync), { from: "/build/linux/no" });
        assert.strictEqual(parseScanStatus({ buildDirs: [] }), undefined);
    });

    await check("a missing server is explained with the install command", async () => {
        const missing = await resolveServer({ path: "/nonexistent/reachls" });
        assert.strictEqual(missing.ok, false);
        assert.match(missing.problem, /\/nonexistent\/reachls/);
        assert.match(missing.install, /pip install reachls/);
        const noPackage = await resolveServer({ pythonPath: process.execPath }); // node cannot import reachls
        assert.strictEqual(noPackage.ok, false);
        assert.match(noPackage.install, /pip install reachls/);
        const nothing = await resolveServer({}, { PATH: "/nonexistent" });
        assert.strictEqual(nothing.ok, false);
    });

    const server = await resolveServer({ pythonPath: python });
    await check("reachls.server.pythonPath → python -m reachls.cli serve", () => {
        assert.strictEqual(server.ok, true, server.problem);
        assert.deepStrictEqual(server.args, ["-m", "reachls.cli", "serve"]);
    });

    const child = spawn(server.command, server.args, { cwd: tree, stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => { stderr += chunk; });
    const connection = rpc.createMessageConnection(
        new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
    const diagnostics = [];          // every publishDiagnostics for entry.S, in order
    const progress = [];             // every $/progress value
    const messages = [];
    const scanStatuses = [];          // every reachls/scanStatus
    connection.onNotification(rpc.PublishDiagnosticsNotification.type, (params) => {
        if (params.uri === entryUri) {
            diagnostics.push(params.diagnostics);
        }
    });
    connection.onNotification("$/progress", (params) => progress.push(params));
    connection.onNotification(rpc.ShowMessageNotification.type, (params) => messages.push(params.message));
    connection.onNotification("reachls/scanStatus", (params) => scanStatuses.push(params));
    connection.onNotification(rpc.LogMessageNotification.type, () => undefined);
    connection.onRequest(rpc.WorkDoneProgressCreateRequest.type, () => null);
    connection.onRequest(rpc.RegistrationRequest.type, () => null);
    connection.onRequest(rpc.ConfigurationRequest.type, (params) => params.items.map(() => null));
    connection.listen();

    try {
        const root = pathToFileURL(tree).href;
        const result = await connection.sendRequest(rpc.InitializeRequest.type, {
            processId: process.pid,
            rootUri: root,
            workspaceFolders: [{ uri: root, name: path.basename(tree) }],
            capabilities: {
                window: { workDoneProgress: true },
                textDocument: { publishDiagnostics: { relatedInformation: true }, hover: {}, codeAction: {} },
            },
            initializationOptions: initializationOptions(settings),
        });
        await connection.sendNotification(rpc.InitializedNotification.type, {});
        await check("initialize: hover, code actions, code lenses and the four commands", () => {
            assert.ok(result.capabilities.hoverProvider);
            assert.ok(result.capabilities.codeActionProvider);
            assert.ok(result.capabilities.codeLensProvider);
            assert.deepStrictEqual([...result.capabilities.executeCommandProvider.commands].sort(),
                ["reachls.picture", "reachls.report", "reachls.rescan", "reachls.showReferences"]);
        });

        const first = await waitFor("diagnostics for entry.S", () => diagnostics.find((d) => d.length));
        const errors = first.filter((d) => d.severity === ERROR);
        await check("entry.S gets reachls errors on the cbz/adr lines", () => {
            assert.ok(errors.length >= 1, JSON.stringify(first));
            const lines = fs.readFileSync(ENTRY, "utf8").split("\n");
            for (const diagnostic of errors) {
                assert.strictEqual(diagnostic.source, "reachls");
                assert.match(lines[diagnostic.range.start.line], /\b(cbz|adr)\b.*hyp_panic/);
            }
        });

        await check("work-done progress titled reachls, begun and ended", async () => {
            await waitFor("the end of the scan's progress", () => progress.some((p) => p.value.kind === "end"));
            const begin = progress.find((p) => p.value.kind === "begin");
            assert.ok(begin && begin.value.title === "reachls" && String(begin.token).startsWith("reachls-scan-"));
        });

        await check("reachls/scanStatus after the scan: the build dir, its artefact, overflows counted", async () => {
            const status = parseScanStatus(await waitFor("reachls/scanStatus", () => scanStatuses[0]));
            assert.deepStrictEqual(status.buildDirs, [path.join(tree, "out/overflow")]);
            assert.deepStrictEqual(status.problems, []);
            assert.deepStrictEqual(status.artefacts.map((a) => a.path), [path.join(tree, "out/overflow/vmlinux.o")]);
            assert.ok(Math.abs(status.artefacts[0].mtime - fs.statSync(status.artefacts[0].path).mtimeMs / 1000) < 1);
            assert.match(statusText(status), /^reachls \$\(error\) [1-9]\d* overflows? \$\(warning\) \d+ at risk$/);
            const tooltip = statusTooltip(status);
            assert.ok(tooltip.includes(`  ${path.join(tree, "out/overflow")}\n    ${status.artefacts[0].path}, built `), tooltip);
            assert.match(tooltip, /overflow: [1-9]\d* references? \(/);
        });

        await check("the hover names the relink engine set in the settings", async () => {
            const hover = await connection.sendRequest(rpc.HoverRequest.type,
                { textDocument: { uri: entryUri }, position: errors[0].range.start });
            assert.match(hover.contents.value, /\d+ B \(/);
            assert.match(hover.contents.value, /placed by \| relink/);
        });

        await check("reachls.report returns the text report", async () => {
            const report = await connection.sendRequest(rpc.ExecuteCommandRequest.type,
                { command: "reachls.report", arguments: [] });
            assert.match(report, /overflow/);
            assert.match(report, /entry\.S/);
        });

        // A settings change, sent as the extension sends it: overflow → warning, model engine.
        const changed = serverSettings({ ...userSettings, engine: "model", severity: { overflow: "warning" } },
            [tree]);
        const seen = diagnostics.length;
        await connection.sendNotification(rpc.DidChangeConfigurationNotification.type, configurationChange(changed));
        const republished = await waitFor("diagnostics republished after didChangeConfiguration",
            () => diagnostics.slice(seen).find((d) => d.length && d.every((x) => x.severity !== ERROR)));
        await check("didChangeConfiguration: overflows republished as warnings", () => {
            const lines = (d) => d.map((x) => x.range.start.line).sort();
            assert.deepStrictEqual(lines(republished.filter((d) => d.severity === WARNING)), lines(errors));
        });
        await check("didChangeConfiguration: the new engine is used", async () => {
            const hover = await connection.sendRequest(rpc.HoverRequest.type,
                { textDocument: { uri: entryUri }, position: errors[0].range.start });
            assert.match(hover.contents.value, /placed by \| model/);
        });

        // The workspace stops being trusted (a new window on it): what the extension then sends.
        const rescanned = async (next) => {
            const scans = scanStatuses.length;
            await connection.sendNotification(rpc.DidChangeConfigurationNotification.type, configurationChange(next));
            await waitFor("a scan after didChangeConfiguration", () => scanStatuses.length > scans);
            const hover = await connection.sendRequest(rpc.HoverRequest.type,
                { textDocument: { uri: entryUri }, position: errors[0].range.start });
            return hover.contents.value;
        };
        const trusted = serverSettings({ ...userSettings, allowWorkspaceLinker: true }, [tree]);
        await check("trusted again: the relink engine", async () => {
            assert.match(await rescanned(trusted), /placed by \| relink/);
        });
        await check("untrusted: placed by the model, whatever the settings ask", async () => {
            assert.match(await rescanned(untrustedSettings(trusted)), /placed by \| model/);
        });
        await check("no error messages from the server", () => assert.deepStrictEqual(messages, []));

        await connection.sendRequest(rpc.ShutdownRequest.type);
        await connection.sendNotification(rpc.ExitNotification.type);
        const code = await new Promise((resolve) => child.on("exit", resolve));
        await check("shutdown and exit", () => assert.strictEqual(code, 0));
    } catch (error) {
        child.kill();
        console.error(`server stderr:\n${stderr}`);
        throw error;
    } finally {
        connection.dispose();
    }
    console.log(`${passed} passed, 0 failed`);
}

main().catch((error) => {
    console.error(`not ok - ${error.stack || error}`);
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
});
