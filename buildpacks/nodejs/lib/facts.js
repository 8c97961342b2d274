// Prints what bin/compile needs to know about the app in the current folder, as shell
// assignments (one node start instead of six; each costs a few hundred ms on a busy machine):
//   engines        package.json engines.node ("" when absent)
//   engines_ok     yes | no | unknown: does this node satisfy it (npm's own semver decides)
//   script         heroku-postbuild, else build, else ""
//   has_dev        yes when package.json declares devDependencies
//   npm_version    the version of the npm next to this node
//   node_version   this node's version (v20.20.2)
// Exits 3 when package.json is not valid JSON.
"use strict";
const fs = require("fs");
const path = require("path");
const { execPath } = process;

let pkg;
try {
  pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
} catch (e) {
  process.stderr.write(`package.json: ${e.message}\n`);
  process.exit(3);
}
const npmDir = (() => {
  for (const dir of (process.env.PATH || "").split(":")) {
    try {
      return path.resolve(path.dirname(fs.realpathSync(path.join(dir, "npm"))), "..");
    } catch (e) { /* not here */ }
  }
  return path.resolve(path.dirname(execPath), "..", "lib", "node_modules", "npm");
})();
const read = (file) => { try { return JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { return {}; } };
const engines = String((pkg.engines && pkg.engines.node) || "");
let enginesOk = "unknown";
if (engines) {
  try {
    const semver = require(path.join(npmDir, "node_modules", "semver"));
    enginesOk = semver.satisfies(process.version, engines) ? "yes" : "no";
  } catch (e) { /* an npm without semver, or a range semver cannot read */ }
}
const scripts = pkg.scripts || {};
const facts = {
  engines,
  engines_ok: enginesOk,
  script: scripts["heroku-postbuild"] ? "heroku-postbuild" : (scripts.build ? "build" : ""),
  has_dev: pkg.devDependencies && Object.keys(pkg.devDependencies).length ? "yes" : "no",
  npm_version: String(read(path.join(npmDir, "package.json")).version || ""),
  node_version: process.version,
};
const quote = (v) => "'" + v.replace(/'/g, "'\\''") + "'";
for (const [k, v] of Object.entries(facts)) console.log(`${k}=${quote(v)}`);
