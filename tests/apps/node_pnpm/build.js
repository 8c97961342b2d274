// The build step needs a devDependency; the web process must not.
const isNumber = require("is-number");
require("fs").writeFileSync(__dirname + "/built.txt", isNumber(90000) ? "90000\n" : "?\n");
