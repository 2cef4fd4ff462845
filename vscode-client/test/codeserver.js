// What the code-server end-to-end scripts share: headless Chromium on one page of the workbench,
// steps that screenshot and name where they failed, the command palette, and what was seen
// printed as one JSON object on the last line, a failed step's too.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const TIMEOUT = 60000;

/**
 * Runs `body({ page, shot, step, command })` in a fresh Chromium page `width` pixels wide, then
 * closes the browser and prints `seen` (Monaco renders spaces as no-break spaces: printed as spaces).
 * A failing `step(name, fn)` leaves a screenshot `failed-NAME.png` in `shots`.
 */
async function drive({ executablePath, shots, width, seen }, body) {
    const browser = await chromium.launch({
        executablePath,
        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-extensions", "--no-first-run", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    page.setDefaultTimeout(TIMEOUT);
    const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) });
    const step = async (name, fn) => {
        try {
            return await fn();
        } catch (error) {
            await shot(`failed-${name}`).catch(() => undefined);
            throw new Error(`${name}: ${error.message}`);
        }
    };
    /** Runs a command from the palette: typed as `title`, its row picked by `exact`. */
    const command = async (title, exact = title) => {
        await page.keyboard.press("F1");
        await page.locator(".quick-input-widget input").waitFor();
        await page.keyboard.type(title);
        const row = page.locator(".quick-input-list .monaco-list-row .label-name", { hasText: exact }).first();
        await row.waitFor();
        await row.click();
    };
    try {
        await body({ page, shot, step, command });
    } finally {
        await browser.close();
        console.log(JSON.stringify(seen, (key, value) => typeof value === "string" ? value.replace(/\u00a0/g, " ") : value));
    }
}

/** Runs a script's `main`, exiting 1 with its stack when it fails. */
function run(main) {
    main().catch((error) => {
        console.error(error.stack || String(error));
        process.exit(1);
    });
}

module.exports = { TIMEOUT, drive, run };
