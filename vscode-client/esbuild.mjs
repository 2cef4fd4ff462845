// Bundles the extension (dist/extension.js, `vscode` left to the host) and, for the Node tests,
// the vscode-free modules on their own (out/settings.js, out/server.js, out/scanStatus.js; not packaged).
import * as esbuild from "esbuild";

const production = process.argv.includes("--production");
const watch = process.argv.includes("--watch");

const common = {
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    sourcemap: !production,
    minify: production,
    logLevel: "info",
};

const builds = [
    { ...common, entryPoints: ["src/extension.ts"], outfile: "dist/extension.js", external: ["vscode"] },
    { ...common, entryPoints: ["src/settings.ts", "src/server.ts", "src/scanStatus.ts"], outdir: "out", minify: false, sourcemap: false },
];

if (watch) {
    await Promise.all(builds.map(async (options) => (await esbuild.context(options)).watch()));
} else {
    await Promise.all(builds.map((options) => esbuild.build(options)));
}
