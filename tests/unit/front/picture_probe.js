#!/usr/bin/env node
// Opens a `reachls picture` file (SVG or HTML) in headless Chromium and prints, as one JSON
// object, what a reader sees there: where each element is drawn (bounding boxes, in page pixels),
// the text hovering each record shows, every request the page made and every console message
// (a content security policy violation is one). tests/unit/front/test_picture.py checks it against the
// linker's and llvm-nm's addresses.
//
//   NODE_PATH=<dir holding playwright-core> node tests/unit/front/picture_probe.js FILE CHROMIUM
"use strict";
/* global document */ // used only in functions that run in the browser

const path = require("path");
const { pathToFileURL } = require("url");
const { chromium } = require("playwright-core");

const [file, executablePath] = process.argv.slice(2);

async function main() {
    const browser = await chromium.launch({
        executablePath, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
    });
    const seen = { requests: [], console: [] };
    try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        page.on("request", (request) => seen.requests.push(request.url()));
        page.on("console", (message) => seen.console.push(`${message.type()}: ${message.text()}`));
        const url = pathToFileURL(path.resolve(file)).href;
        await page.goto(url);
        seen.requests = seen.requests.filter((request) => request !== url);
        const boxes = (selector) => page.locator(selector).evaluateAll((elements) => elements.map((element) => {
            const box = element.getBoundingClientRect();
            const title = element.querySelector(":scope > title");
            return {
                data: { ...element.dataset }, title: title ? title.textContent : null,
                left: box.left, right: box.right,
                parts: Object.fromEntries([...element.children].filter((child) => child.getAttribute("class"))
                    .map((child) => {
                        const part = child.getBoundingClientRect();
                        return [child.getAttribute("class"), { left: part.left, right: part.right,
                                                               center: (part.left + part.right) / 2 }];
                    })),
                rect: (() => {
                    const rect = element.querySelector("rect");
                    if (!rect) { return null; }
                    const r = rect.getBoundingClientRect();
                    return { left: r.left, right: r.right };
                })(),
            };
        }));
        seen.records = await boxes(".reachls-layout .record");
        seen.outputSections = await boxes(".reachls-layout .output-section");
        seen.inputSections = await boxes(".reachls-layout .input-section");
        seen.labels = await page.locator(".reachls-layout .output-section text, .reachls-layout .input-section text")
            .evaluateAll((texts) => texts.map((t) => {
                const box = t.getBoundingClientRect();
                return { text: t.textContent, left: box.left, right: box.right, top: box.top, bottom: box.bottom };
            }));
        // Hover each record's site marker: the tooltip an HTML page shows (none in a bare SVG).
        seen.hovers = [];
        if ((await page.locator("#tip").count()) > 0) {
            const sites = page.locator(".reachls-layout .record .site");
            for (let i = 0; i < await sites.count(); i++) {
                await sites.nth(i).hover({ force: true });
                const tip = page.locator("#tip");
                seen.hovers.push(await tip.isVisible() ? await tip.innerText() : null);
            }
        }
    } finally {
        await browser.close();
        console.log(JSON.stringify(seen));
    }
}

main().catch((error) => {
    console.error(error.stack || String(error));
    process.exit(1);
});
