const express = require('express')
const path = require('path')
const PORT = process.env.PORT || 5000

express()
  .get('/', (req, res) => res.send('Hello from Express ' + require('express/package.json').version + ' without a lockfile\n'))
  .listen(PORT, () => console.log(`Listening on ${ PORT }`))
