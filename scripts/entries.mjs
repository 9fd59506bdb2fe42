// Writes the package's entry points around tsc's CommonJS output, so that `require()` returns the
// plugin itself, `import x from` gets the plugin, and `import { cognitoAuth } from` works too.
import { createRequire } from 'node:module'
import { writeFileSync } from 'node:fs'

const require = createRequire(import.meta.url)

for (const name of ['index', 'testing']) {
  const names = Object.keys(require(`../dist/${name}.js`)).filter((key) => key !== 'default' && key !== '__esModule')
  const hasDefault = name === 'index'
  writeFileSync(new URL(`../dist/${name}.cjs`, import.meta.url), [
    "'use strict'",
    `const m = require('./${name}.js')`,
    hasDefault ? 'module.exports = Object.assign(m.default, m)' : 'module.exports = m',
    ''
  ].join('\n'))
  writeFileSync(new URL(`../dist/${name}.mjs`, import.meta.url), [
    `import m from './${name}.js'`,
    ...(hasDefault ? ['export default m.default'] : []),
    `export const { ${names.join(', ')} } = m`,
    ''
  ].join('\n'))
  writeFileSync(new URL(`../dist/${name}.d.mts`, import.meta.url), [
    `export * from './${name}.js'`,
    ...(hasDefault ? ["import { cognitoAuth } from './index.js'", 'export default cognitoAuth'] : []),
    ''
  ].join('\n'))
}
