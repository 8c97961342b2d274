// The build script: proves `npm run build` ran during the build.
const fs = require("fs");
fs.mkdirSync(__dirname + "/dist", { recursive: true });
fs.writeFileSync(__dirname + "/dist/message.txt", "hello from express, built at build time\n");
