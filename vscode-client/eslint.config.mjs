import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
    { ignores: ["dist/", "out/", "node_modules/", "*.vsix"] },
    js.configs.recommended,
    {
        files: ["src/**/*.ts"],
        extends: [...tseslint.configs.recommendedTypeChecked],
        languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
        rules: {
            "@typescript-eslint/no-floating-promises": "error",
            "@typescript-eslint/consistent-type-imports": "off",
            eqeqeq: "error",
            curly: "error",
        },
    },
    {
        files: ["**/*.js", "**/*.mjs"],
        languageOptions: {
            sourceType: "module",
            globals: { process: "readonly", console: "readonly", require: "readonly", module: "writable",
                       __dirname: "readonly", setTimeout: "readonly", clearTimeout: "readonly", Buffer: "readonly" },
        },
    },
    { files: ["test/**/*.js"], languageOptions: { sourceType: "commonjs" } },
);
