# shellcheck shell=bash
# Which package manager builds a Node.js app, shared by bin/tools and bin/compile.
#
# Why one place: bin/tools (which tools the platform must provide) and bin/compile (which
# installer it runs) must agree. The rule, as Heroku's Node.js buildpack applies it:
# package.json's "packageManager" field when it names npm, yarn or pnpm; otherwise the
# lockfile: yarn.lock, then pnpm-lock.yaml, then npm-shrinkwrap.json / package-lock.json;
# no lockfile at all means `npm install`.

# The versions the platform installs into its tool cache (bin/tools --install).
NODE_YARN_TOOL="yarn-1.22.22"
NODE_PNPM_TOOL="pnpm-9.15.9"

# Prints "MANAGER LOCKFILE" for the app in the current folder (LOCKFILE may be empty).
node_manager() {
  local declared=""
  if grep -q '"packageManager"' package.json; then
    declared="$(node -p 'String(require("./package.json").packageManager || "").split("@")[0]' 2>/dev/null || true)"
  fi
  case "$declared" in
    yarn) echo "yarn $( [ -f yarn.lock ] && echo yarn.lock )"; return ;;
    pnpm) echo "pnpm $( [ -f pnpm-lock.yaml ] && echo pnpm-lock.yaml )"; return ;;
  esac
  if [ "$declared" != npm ]; then
    if [ -f yarn.lock ]; then echo "yarn yarn.lock"; return; fi
    if [ -f pnpm-lock.yaml ]; then echo "pnpm pnpm-lock.yaml"; return; fi
  fi
  local f
  for f in npm-shrinkwrap.json package-lock.json; do
    if [ -f "$f" ]; then echo "npm $f"; return; fi
  done
  echo "npm "
}

# The tool (from the tool cache) a manager needs; nothing for npm, which comes with node.
node_tool_for() {
  case "$1" in
    yarn) echo "$NODE_YARN_TOOL" ;;
    pnpm) echo "$NODE_PNPM_TOOL" ;;
  esac
}
