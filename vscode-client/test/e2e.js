#!/usr/bin/env node
// Drives a real VS Code (code-server, with the packaged extension installed) in headless
// Chromium, as a person would: open entry.S, read the Problems view and the status bar, hover
// the `cbz` line, open the quick fixes and apply one, save. Prints what it saw as one JSON
// object on the last line; tests/clients/test_vscode_e2e.py checks it against the linker's answers.
//
// Then the Settings editor: every reachls setting listed in the User tab, path mappings edited
// without JSON, overflow severity → warning (the Problems view follows). Then a second workspace,
// NOBUILD (the sources without their build, which is elsewhere): the status bar item says there
// is no build dir, a notification offers "Set Build Directory…", whose folder picker is answered
// with BUILD_DIR. Last, a missing interpreter (the error names it, and its button opens the settings).
//
//   node test/e2e.js URL TREE SCREENSHOT_DIR CHROMIUM NOBUILD BUILD_DIR
"use strict";
/* global document, window, MutationObserver, getComputedStyle */ // used only in functions that run in the browser

const fs = require("fs");
const path = require("path");
const { TIMEOUT, drive, run } = require("./codeserver");

const [url, tree, shots, executablePath, nobuild, buildDir] = process.argv.slice(2);
const ENTRY = path.join(tree, "arch/arm64/kvm/hyp/entry.S");

async function main() {
    const lines = fs.readFileSync(ENTRY, "utf8").split("\n");
    const cbzLine = lines.findIndex((line) => /^\s*cbz\s.*hyp_panic/.test(line)) + 1;
    const seen = { cbzLine };
    await drive({ executablePath, shots, width: 1400, seen }, async ({ page, shot, step, command }) => {
        // The Settings editor on its User tab (in a remote window, code-server's, the tab that
        // leaves out machine-scoped settings), searched for `query`.
        const openSettings = async (query) => {
            await command("Preferences: Open User Settings", /^Preferences: Open User Settings$/);
            const search = page.locator(".settings-editor .suggest-input-container");
            await search.waitFor();
            await page.locator(".settings-editor .settings-tabs-widget .action-label", { hasText: /^User$/ }).click();
            await search.click();
            await page.keyboard.press("Control+A");
            await page.keyboard.type(query);
        };
        const openSetting = async (key) => {
            await openSettings(key);
            await page.locator(`.settings-editor .setting-item-contents[data-key="${key}"]`).waitFor();
        };
        const statusItem = () => page.locator(".statusbar-item", { hasText: "reachls" }).first();
        await step("workbench", async () => {
            await page.goto(`${url}/?folder=${encodeURIComponent(tree)}`);
            await page.locator(".monaco-workbench").waitFor();
        });

        // The extension starts the server; its status bar item shows the counts of the scan.
        seen.status = await step("status bar", async () => {
            await statusItem().waitFor();
            await page.waitForFunction(() => [...document.querySelectorAll(".statusbar-item")]
                .some((e) => /reachls\D*[1-9]\d* overflows?/.test(e.textContent ?? "")), null, { timeout: TIMEOUT });
            return (await statusItem().textContent()).trim();
        });

        // Rescan Now from the command palette: the status bar spins while the server's
        // work-done progress runs (a MutationObserver catches even a short scan).
        seen.spinner = await step("rescan", async () => {
            await page.evaluate(() => {
                window.reachlsSpun = false;
                const bar = document.querySelector(".part.statusbar");
                new MutationObserver(() => {
                    if (bar.querySelector(".codicon-sync.codicon-modifier-spin")) {
                        window.reachlsSpun = true;
                    }
                }).observe(bar, { subtree: true, childList: true, attributes: true, characterData: true });
            });
            await command("reachls: Rescan Now");
            await page.waitForFunction(() => window.reachlsSpun, null, { timeout: 30000 }).catch(() => undefined);
            return page.evaluate(() => window.reachlsSpun);
        });

        // Show Report: the CLI's text report in an editor.
        seen.report = await step("report", async () => {
            await command("reachls: Show Report");
            await page.locator(".tab.active", { hasText: "reachls report" }).waitFor();
            const editor = page.locator(".editor-group-container.active .monaco-editor .view-lines").first();
            await editor.locator(".view-line", { hasText: "overflow" }).first().waitFor();
            const text = await editor.innerText();
            await page.keyboard.press("Control+W");
            return text;
        });

        await step("open entry.S", async () => {
            await page.keyboard.press("Control+P");
            await page.locator(".quick-input-widget input").waitFor();
            await page.keyboard.type("entry.S");
            await page.locator(".quick-input-list .monaco-list-row", { hasText: "entry.S" }).first().waitFor();
            await page.keyboard.press("Enter");
            await page.locator(".tab.active", { hasText: "entry.S" }).waitFor();
            await page.locator(".monaco-editor .view-line", { hasText: "__guest_enter" }).first().waitFor();
        });

        // The language VS Code gave entry.S (the user's highlighting extension's, not one of
        // reachls), and whether the `cbz` is coloured as a keyword by its grammar.
        seen.language = await step("language of entry.S", async () => {
            const mode = page.locator("#status\\.editor\\.mode");
            await mode.waitFor();
            const cbz = page.locator(".monaco-editor .view-line", { hasText: /cbz\s+x0,\s*hyp_panic/ }).first()
                .locator("span span", { hasText: /^cbz$/ }).first();
            const plain = page.locator(".monaco-editor .view-line", { hasText: "__guest_enter" }).first()
                .locator("span span").first();
            return { mode: (await mode.innerText()).trim(), cbzClass: await cbz.getAttribute("class").catch(() => null),
                     plainClass: await plain.getAttribute("class") };
        });

        seen.problems = await step("problems view", async () => {
            await page.keyboard.press("Control+Shift+M");
            const rows = page.locator(".markers-panel .monaco-list-row");
            await rows.filter({ hasText: "hyp_panic" }).first().waitFor();
            const labels = [];
            for (const row of await rows.all()) {
                labels.push((await row.getAttribute("aria-label")) ?? (await row.textContent()));
            }
            await shot("problems");
            return labels;
        });

        await step("go to the cbz line", async () => {
            await page.locator(".monaco-editor .view-lines").first().click();
            await page.keyboard.press("Control+G");
            await page.locator(".quick-input-widget input").waitFor();
            await page.keyboard.type(`${cbzLine}:2`);
            await page.keyboard.press("Enter");
        });

        seen.hover = await step("hover", async () => {
            const cbz = page.locator(".monaco-editor .view-line", { hasText: /cbz\s+x0,\s*hyp_panic/ }).first();
            await cbz.waitFor();
            const box = await cbz.locator("span span", { hasText: "cbz" }).first().boundingBox();
            const hover = page.locator(".monaco-hover:not(.hidden)", { hasText: "placed by" }).first();
            for (let attempt = 0; attempt < 5; attempt++) {
                await page.mouse.move(box.x + 2, box.y + box.height / 2);
                await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
                try {
                    await hover.waitFor({ timeout: 5000 });
                    break;
                } catch {
                    await page.mouse.move(0, 0);
                }
            }
            await hover.waitFor({ timeout: 1000 });
            await shot("hover");
            const text = await hover.innerText();
            await page.mouse.move(700, 880);
            await page.keyboard.press("Escape");
            return text;
        });

        seen.fixes = await step("quick fix menu", async () => {
            await page.keyboard.press("Control+.");
            const items = page.locator(".action-widget .monaco-list-row.action");
            await items.first().waitFor();
            await shot("quick-fixes");
            return (await items.locator(".title").allInnerTexts()).map((t) => t.trim());
        });

        seen.applied = await step("apply a quick fix", async () => {
            // The instruction rewrite: it edits entry.S itself. Chosen with the keyboard, as the
            // menu opens focused on its first item (a pointer block covers it for the mouse).
            const index = Math.max(0, seen.fixes.findIndex((t) => t.startsWith("Invert")));
            for (let i = 0; i < index; i++) {
                await page.keyboard.press("ArrowDown");
            }
            const title = seen.fixes[index];
            await page.locator(".action-widget .monaco-list-row.action.focused", { hasText: title }).waitFor();
            const before = fs.readFileSync(ENTRY, "utf8");
            await page.keyboard.press("Enter");
            // VS Code saves files changed by a code action itself (files.refactoring.autoSave);
            // Ctrl+S covers a setup where it does not.
            await page.keyboard.press("Control+S");
            await page.locator(".tab.active:not(.dirty)", { hasText: "entry.S" }).waitFor();
            const deadline = Date.now() + TIMEOUT;
            while (fs.readFileSync(ENTRY, "utf8") === before && Date.now() < deadline) {
                await page.waitForTimeout(200);
            }
            return title;
        });
        await shot("after-fix");

        // The Settings editor filtered to the extension, User tab: every setting it lists (on a
        // page tall enough for the whole list), and how path mappings are edited.
        seen.userTab = await step("settings in the User tab", async () => {
            await page.setViewportSize({ width: 1400, height: 4000 });
            await openSettings("@ext:reachls.reachls");
            await page.locator('.settings-editor .setting-item-contents[data-key^="reachls."]').first().waitFor();
            await page.waitForTimeout(500);
            await shot("user-tab");
            const keys = await page.locator('.settings-editor .setting-item-contents[data-key^="reachls."]')
                .evaluateAll((items) => items.map((item) => item.getAttribute("data-key")));
            const mappings = page.locator('.settings-editor .setting-item-contents[data-key="reachls.pathMappings"]');
            const pathMappings = {
                editAsJson: await mappings.locator(".edit-in-settings-button").count(),
                addItem: await mappings.locator(".monaco-button", { hasText: "Add Item" }).count(),
            };
            await page.setViewportSize({ width: 1400, height: 900 });
            return { keys, pathMappings };
        });

        // Settings changed in the Settings editor reach the running server: overflows as warnings.
        seen.afterSeverityChange = await step("severity setting", async () => {
            await openSetting("reachls.severity.overflow");
            await page.locator('.settings-editor select[aria-label="reachls.severity.overflow"]').click();
            await page.locator(".monaco-select-box-dropdown-container .monaco-list-row", { hasText: /^warning$/ })
                .click();
            await page.waitForFunction(() => {
                const rows = [...document.querySelectorAll(".markers-panel .monaco-list-row[aria-label*='hyp_panic']")];
                return rows.length > 0 && rows.every((row) => !row.getAttribute("aria-label").startsWith("Error"));
            }, null, { timeout: TIMEOUT });
            await shot("severity-changed");
            return page.locator(".markers-panel .monaco-list-row").evaluateAll(
                (rows) => rows.map((row) => row.getAttribute("aria-label") ?? ""));
        });

        // The sources without their build: the status item warns, in words, and a notification
        // offers the fix; its folder picker (the simple file dialog of a remote window) is
        // answered with the build dir, which ends up in the workspace settings and is scanned.
        seen.noBuildDir = await step("no build dir", async () => {
            await page.goto(`${url}/?folder=${encodeURIComponent(nobuild)}`);
            await page.locator(".monaco-workbench").waitFor();
            await page.waitForFunction(() => [...document.querySelectorAll(".statusbar-item")]
                .some((e) => /reachls: no build dir/.test(e.textContent ?? "")), null, { timeout: TIMEOUT });
            const item = statusItem();
            const status = {
                text: (await item.textContent()).trim(),
                className: await item.getAttribute("class"),
                background: await item.evaluate((e) => getComputedStyle(e).backgroundColor),
            };
            const toast = page.locator(".notification-toast", { hasText: "reachls" }).first();
            await toast.waitFor();
            await shot("no-build-dir");
            const message = (await toast.locator(".notification-list-item-message").innerText()).trim();
            const buttons = await toast.locator(".monaco-button").allInnerTexts();
            // The item's own action (the notification's button runs the same command).
            await item.click();
            // The dialog fills its input itself once it has listed the default folder; typed after that.
            const input = page.locator(".quick-input-widget input");
            await page.locator(".quick-input-list .monaco-list-row", { hasText: "arch" }).first().waitFor();
            await input.fill(`${buildDir}/`);
            await page.waitForFunction(() => {  // listing the build dir: its init/, not the sources' include/
                const rows = [...document.querySelectorAll(".quick-input-list .monaco-list-row")].map((r) => r.textContent);
                return rows.some((r) => r.includes("init")) && !rows.some((r) => r.includes("include"));
            }, null, { timeout: TIMEOUT });
            await page.locator(".quick-input-widget .monaco-button", { hasText: "Use as Build Directory" }).click();
            await page.waitForFunction(() => [...document.querySelectorAll(".statusbar-item")]
                .some((e) => /reachls\D*[1-9]\d* overflows?/.test(e.textContent ?? "")), null, { timeout: TIMEOUT });
            await shot("build-dir-set");
            return { status, message, buttons, after: (await statusItem().textContent()).trim() };
        });

        // Add Path Mapping…: the build machine's prefix typed, the workspace folder picked (the
        // picker opens on it); the pair lands in the workspace settings.
        seen.addPathMapping = await step("add path mapping", async () => {
            await command("reachls: Add Path Mapping…");
            const input = page.locator(".quick-input-widget input");
            await page.locator(".quick-input-widget", { hasText: "Add Path Mapping (1/2)" }).waitFor();
            await input.fill("/build/linux");
            await page.keyboard.press("Enter");
            await page.locator(".quick-input-widget", { hasText: "Add Path Mapping (2/2)" }).waitFor();
            await page.locator(".quick-input-list .monaco-list-row", { hasText: "arch" }).first().waitFor();
            const picked = await input.inputValue();
            await page.locator(".quick-input-widget .monaco-button", { hasText: "Map Here" }).click();
            const settings = path.join(nobuild, ".vscode", "settings.json");
            const deadline = Date.now() + TIMEOUT;
            while (!fs.readFileSync(settings, "utf8").includes("reachls.pathMappings") && Date.now() < deadline) {
                await page.waitForTimeout(200);
            }
            return { picked };
        });

        // A server that cannot be started is explained, with the install command and a button
        // that opens the settings.
        seen.missingServer = await step("missing server", async () => {
            await openSetting("reachls.server.pythonPath");
            const input = page.locator('.settings-editor [data-key="reachls.server.pythonPath"] input');
            await input.fill("/nonexistent/python3");
            await input.press("Enter");
            const toast = page.locator(".notification-toast", { hasText: "/nonexistent/python3" }).first();
            await toast.waitFor();
            await shot("missing-server");
            const message = (await toast.locator(".notification-list-item-message").innerText()).trim();
            await toast.locator(".monaco-button", { hasText: "Open Settings" }).click();
            await page.waitForFunction(() => [...document.querySelectorAll(".settings-editor .suggest-input-container")]
                .some((e) => (e.textContent ?? "").includes("reachls.server")), null, { timeout: TIMEOUT });
            const query = await page.locator(".settings-editor .suggest-input-container").first().innerText();
            const status = await statusItem().textContent();
            return { message, query: query.trim(), status: status.trim() };
        });
    });
}

run(main);
