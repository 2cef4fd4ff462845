#!/usr/bin/env node
// Drives "reachls: Show Layout" in a real VS Code (code-server, the packaged extension installed)
// in headless Chromium: the picture opens in a webview, hovering a reference shows its record, and
// clicking a reference's site opens its source file at its line (clicking its target, the target's
// file). Prints what it saw as one JSON object on the last line; tests/clients/test_picture_vscode.py
// checks it against ld.lld's own errors.
//
//   node test/layout-e2e.js URL TREE SCREENSHOT_DIR CHROMIUM
"use strict";
/* global document */ // used only in functions that run in the browser

const path = require("path");
const { TIMEOUT, drive, run } = require("./codeserver");

const [url, tree, shots, executablePath] = process.argv.slice(2);

async function main() {
    const seen = { requests: [] };
    await drive({ executablePath, shots, width: 1600, seen }, async ({ page, shot, step, command }) => {
        page.on("request", (request) => {  // any request off the machine (blob: and the server's own are local)
            if (/^(https?|wss?):/.test(request.url()) && !request.url().startsWith(url)) {
                seen.requests.push(request.url());
            }
        });
        // The webview's document sits in an iframe (the active frame) inside the webview's own iframe.
        const picture = page.frameLocator("iframe.webview.ready").frameLocator("iframe#active-frame");
        const records = picture.locator(".reachls-layout .record");
        const cursor = async () => (await page.locator("#status\\.editor\\.selection").innerText()).trim();
        const activeTab = async () =>
            (await page.locator(".editor-group-container.active .tab.active").innerText()).trim();
        await step("workbench", async () => {
            await page.goto(`${url}/?folder=${encodeURIComponent(tree)}`);
            await page.locator(".monaco-workbench").waitFor();
            await page.waitForFunction(() => [...document.querySelectorAll(".statusbar-item")]
                .some((e) => /reachls\D*[1-9]\d* overflows?/.test(e.textContent ?? "")), null, { timeout: TIMEOUT });
        });

        seen.records = await step("show layout", async () => {
            await command("reachls: Show Layout", "Show Layout");
            await page.locator(".tab.active", { hasText: "reachls layout" }).waitFor();
            await records.first().waitFor();
            await shot("layout");
            return records.evaluateAll((elements) => elements.map((e) => ({ ...e.dataset })));
        });

        seen.hover = await step("hover a reference", async () => {
            await records.first().locator(".site").hover({ force: true });
            const tip = picture.locator("#tip");
            await tip.waitFor({ state: "visible" });
            await shot("layout-hover");
            return tip.innerText();
        });

        // Each record's site, clicked in turn: the file that opens and where the cursor lands.
        seen.opened = await step("click the sites", async () => {
            const opened = [];
            for (let i = 0; i < seen.records.length; i++) {
                await page.locator(".tab", { hasText: "reachls layout" }).click();
                await records.nth(i).locator(".site").click({ force: true });
                const name = path.basename(seen.records[i].siteFile);
                await page.locator(".editor-group-container.active .tab.active", { hasText: name }).waitFor();
                await page.waitForFunction((line) => {
                    const item = document.querySelector("#status\\.editor\\.selection");
                    return item && item.textContent.includes(`Ln ${line},`);
                }, Number(seen.records[i].siteLine), { timeout: 10000 }).catch(() => undefined);
                opened.push({ tab: await activeTab(), cursor: await cursor() });
            }
            await shot("site-opened");
            return opened;
        });

        seen.target = await step("click a target", async () => {
            await page.locator(".tab", { hasText: "reachls layout" }).click();
            await records.first().locator(".target").click({ force: true });
            const name = path.basename(seen.records[0].targetFile);
            await page.locator(".editor-group-container.active .tab.active", { hasText: name }).waitFor();
            return { tab: await activeTab(), cursor: await cursor() };
        });
    });
}

run(main);
