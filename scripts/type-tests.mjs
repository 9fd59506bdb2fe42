// Runs the type tests (tstyche) once per program and per module resolution. A program is a folder
// of test/types/ with its own tsconfig files: a user type registered through CognitoUserRegistry
// holds for a whole program, so the folder that registers one is compiled apart from the others.
// Each program is checked as a Node application (`nodenext`) and as a bundled one (`bundler`)
// resolves modules, both with `strict` and `exactOptionalPropertyTypes`.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const tstyche = require.resolve('tstyche/package.json').replace(/package\.json$/, 'build/bin.js')
const programs = readdirSync(new URL('../test/types/', import.meta.url), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort()

let failed = 0
for (const program of programs) {
  for (const resolution of ['nodenext', 'bundler']) {
    // The path argument selects the program's own test files; the others are not in its tsconfig.
    const args = [tstyche, '--tsconfig', `test/types/${program}/tsconfig.${resolution}.json`, `test/types/${program}/`]
    const { status } = spawnSync(process.execPath, args, { stdio: 'inherit' })
    if (status !== 0) failed++
  }
}
process.exitCode = failed === 0 ? 0 : 1
