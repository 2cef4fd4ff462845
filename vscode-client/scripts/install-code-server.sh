#!/usr/bin/env bash
# Installs code-server (a real VS Code, served to a browser) for the end-to-end test, from the npm
# registry alone: the only download its install would make elsewhere, ripgrep's prebuilt binary,
# is replaced by Debian's `rg`. Native modules are compiled against the headers of the installed
# Node (Debian/NodeSource ship them under /usr/include/node), so node-gyp downloads nothing either.
#
#   scripts/install-code-server.sh            # installs into $REACHLS_CODE_SERVER_DIR
#   REACHLS_CODE_SERVER_DIR=/opt/cs scripts/install-code-server.sh
#
# Prints the path of the code-server executable on its last line. Idempotent.
set -euo pipefail

VERSION="${CODE_SERVER_VERSION:-4.100.3}"
PREFIX="${REACHLS_CODE_SERVER_DIR:-$HOME/.cache/reachls/code-server}"
BIN="$PREFIX/node_modules/.bin/code-server"
STAMP="$PREFIX/.installed-$VERSION"

if [[ -f "$STAMP" && -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "$major" != 20 ]]; then
    echo "code-server $VERSION needs Node 20 (found $(node --version))" >&2
    exit 1
fi

# Debian packages: compilers and headers for the native modules, ripgrep, and the browser the
# end-to-end test drives.
packages=()
for pair in pkg-config:pkg-config g++:g++ make:make rg:ripgrep chromium:chromium; do
    command -v "${pair%%:*}" >/dev/null || packages+=("${pair#*:}")
done
for pair in krb5.pc:libkrb5-dev x11.pc:libx11-dev xkbfile.pc:libxkbfile-dev libsecret-1.pc:libsecret-1-dev; do
    pkg-config --exists "${pair%.pc:*}" 2>/dev/null || packages+=("${pair#*:}")
done
if ((${#packages[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
        echo "missing Debian packages (install them as root): ${packages[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

nodedir=""
for candidate in "$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")" /usr /usr/local; do
    if [[ -f "$candidate/include/node/node.h" ]]; then nodedir="$candidate"; break; fi
done
if [[ -z "$nodedir" ]]; then
    echo "no Node headers (include/node/node.h) next to $(command -v node): node-gyp would download them" >&2
    exit 1
fi
export npm_config_nodedir="$nodedir" npm_config_build_from_source=true npm_config_unsafe_perm=true npm_config_yes=true
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

mkdir -p "$PREFIX"
cd "$PREFIX"
[[ -f package.json ]] || echo '{"name": "reachls-code-server", "private": true}' > package.json

# 1. code-server and VS Code's own dependencies, no install scripts yet.
npm install --ignore-scripts "code-server@$VERSION" >/dev/null
vscode="$PREFIX/node_modules/code-server/lib/vscode"
(cd "$vscode" && npm install --omit=dev --ignore-scripts >/dev/null)

# 2. ripgrep: its install script downloads a binary unless bin/ already exists.
mkdir -p "$vscode/node_modules/@vscode/ripgrep/bin"
ln -sf "$(command -v rg)" "$vscode/node_modules/@vscode/ripgrep/bin/rg"

# 3. Every install script of VS Code's dependencies: the native modules are compiled here.
(cd "$vscode" && npm rebuild >/dev/null)

# 4. The install scripts of code-server's own dependencies (argon2 is built from source instead
#    of fetching a prebuilt binary) and code-server's postinstall (links, the built-in
#    extensions' dependencies; its `npm install` in lib/vscode finds everything in place).
npm rebuild >/dev/null

"$BIN" --version >/dev/null
touch "$STAMP"
echo "$BIN"
