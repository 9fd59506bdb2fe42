/**
 * The package as an application installs it: built, packed with `npm pack`, unpacked into a
 * scratch project's node_modules, then loaded by plain Node (CommonJS and ESM) and by tsc.
 * The scratch project borrows this repository's installed dependencies through symlinks.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'

const root = resolve(__dirname, '..')
const packageName = 'fastify-cognito-jwt'

// Children run plain, as an application runs the package: without the test runner's loaders,
// and without coverage (the packed build is checked, not measured).
const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), _TAPJS_PROCESSINFO_COVERAGE_: '0' }

function run (command: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`))
      else resolvePromise(stdout)
    })
  })
}

/** The last line of a child's output, where the checks print their findings as JSON. */
function findings (stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop() as string)
}

const cjsCheck = `'use strict'
const cognitoAuth = require('${packageName}')
const loaded = Object.keys(require.cache)
const Fastify = require('fastify')
const { LocalIssuer } = require('${packageName}/testing')

async function main () {
  const issuer = new LocalIssuer()
  const app = Fastify()
  await app.register(cognitoAuth, issuer.pluginOptions())
  app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims.sub }))
  const ok = await app.inject({ url: '/', headers: { authorization: 'Bearer ' + issuer.idToken({ sub: 'cjs-user' }) } })
  const refused = await app.inject({ url: '/' })
  await app.close()
  console.log(JSON.stringify({
    type: typeof cognitoAuth,
    named: cognitoAuth.cognitoAuth === cognitoAuth,
    default: cognitoAuth.default === cognitoAuth,
    errorClass: typeof cognitoAuth.TokenInvalidError,
    main: require.resolve('${packageName}'),
    loadedByMain: loaded.filter((file) => file.includes('${packageName}')),
    authenticated: [ok.statusCode, ok.json()],
    refused: [refused.statusCode, refused.json().code]
  }))
}
main()
`

const esmCheck = `import { createRequire } from 'node:module'
import Fastify from 'fastify'
import cognitoAuth, { cognitoAuth as named, TokenInvalidError } from '${packageName}'
import { LocalIssuer } from '${packageName}/testing'

const require = createRequire(import.meta.url)
const issuer = new LocalIssuer()
const app = Fastify()
await app.register(cognitoAuth, issuer.pluginOptions())
app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims.sub }))
const ok = await app.inject({ url: '/', headers: { authorization: 'Bearer ' + issuer.idToken({ sub: 'esm-user' }) } })
await app.close()
console.log(JSON.stringify({
  type: typeof cognitoAuth,
  named: named === cognitoAuth,
  sameAsRequire: require('${packageName}') === cognitoAuth,
  sameErrorClass: require('${packageName}').TokenInvalidError === TokenInvalidError,
  sameLocalIssuer: require('${packageName}/testing').LocalIssuer === LocalIssuer,
  authenticated: [ok.statusCode, ok.json()]
}))
`

// Type checks of a consumer, against the packed declarations. `@ts-expect-error` lines fail the
// compilation if the types stopped catching the mistake.
const esmConsumer = `import Fastify from 'fastify'
import cognitoAuth, { cognitoAuth as named, type CognitoClaims } from '${packageName}'
import { LocalIssuer } from '${packageName}/testing'

const app = Fastify()
const issuer = new LocalIssuer()
app.register(cognitoAuth, issuer.pluginOptions())
app.register(named, { userPoolId: 'eu-central-1_xYzaq', clientId: null, tokenUse: 'access' })
// @ts-expect-error tokenUse is 'id', 'access' or 'any'
app.register(cognitoAuth, { userPoolId: 'eu-central-1_xYzaq', clientId: 'c', tokenUse: 'both' })
// The claims of resolveUser and isRevoked follow tokenUse: an ID token's by default.
app.register(cognitoAuth, { userPoolId: 'eu-central-1_xYzaq', clientId: 'c', resolveUser: (claims) => claims.email === undefined ? null : claims })
app.register(cognitoAuth, { userPoolId: 'eu-central-1_xYzaq', clientId: 'c', tokenUse: 'access', isRevoked: (claims) => { const id: string = claims.client_id; return id === '' } })
// @ts-expect-error an ID token has no client_id claim of a known type
app.register(cognitoAuth, { userPoolId: 'eu-central-1_xYzaq', clientId: 'c', isRevoked: (claims) => { const id: string = claims.client_id; return id === '' } })
app.get('/', { onRequest: app.authenticate }, async (request) => {
  const claims: CognitoClaims | null = request.cognitoClaims
  // @ts-expect-error the claims may be null
  return { sub: request.cognitoClaims.sub, also: claims?.sub }
})
`

const cjsConsumer = `import Fastify = require('fastify')
import testing = require('${packageName}/testing')
import cognitoAuth from '${packageName}'

const app = Fastify()
app.register(cognitoAuth, new testing.LocalIssuer().pluginOptions())
app.get('/', { preHandler: app.authenticate }, async (request) => ({ user: request.cognitoUser }))
// @ts-expect-error maxTokenLength is a number
app.register(cognitoAuth, { userPoolId: 'eu-central-1_xYzaq', clientId: 'c', maxTokenLength: '8192' })
`

const consumerTsconfig = JSON.stringify({
  compilerOptions: {
    module: 'node16',
    moduleResolution: 'node16',
    target: 'ES2022',
    strict: true,
    noEmit: true,
    // Fastify's and Node's own declarations are not ours to check, and double the time.
    skipLibCheck: true,
    types: ['node']
  },
  files: ['consumer.mts', 'consumer.cts']
})

t.setTimeout(120_000)

t.test('the packed package', async (t) => {
  await run('npm', ['run', 'build'], root)

  const scratch = await mkdtemp(join(tmpdir(), `${packageName}-package-`))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const packed = JSON.parse(await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], root))
  const files: string[] = packed[0].files.map((file: { path: string }) => file.path)

  t.test('ships the build, the README, the license and the changelog, and nothing else', async (t) => {
    t.same(files.filter((file) => !file.startsWith('dist/')).sort(), ['CHANGELOG.md', 'LICENSE', 'README.md', 'package.json'])
    t.ok(files.filter((file) => file.startsWith('dist/')).length > 10, 'the dist/ files')
    const unexpected = files.filter((file) => file.startsWith('dist/') && !/^dist\/(index|testing|lib\/(?:[a-z]+\/)?[a-z-]+|types\/index)\.(js|cjs|mjs|d\.ts|d\.mts)$/.test(file))
    t.same(unexpected, [], 'dist/ holds the entry points, the modules of lib/ and the declarations only')
  })

  t.test('ships the entries with their declarations, and no sources or tests', async (t) => {
    for (const file of ['package.json', 'dist/index.cjs', 'dist/index.mjs', 'dist/index.js', 'dist/testing.cjs', 'dist/testing.mjs', 'dist/testing.js']) {
      t.ok(files.includes(file), file)
    }
    for (const file of ['dist/index.d.ts', 'dist/index.d.mts', 'dist/testing.d.ts', 'dist/testing.d.mts', 'dist/types/index.d.ts']) {
      t.ok(files.includes(file), `declarations: ${file}`)
    }
    t.same(files.filter((file) => /\.ts$/.test(file) && !/\.d\.m?ts$/.test(file)), [], 'no TypeScript sources')
    t.same(files.filter((file) => file.startsWith('test/') || file.startsWith('examples/') || file.startsWith('bench/')), [], 'no tests, examples or benchmarks')
  })

  // Install: the tarball unpacked where Node looks for it, the dependencies linked next to it.
  const modules = join(scratch, 'node_modules')
  const installed = join(modules, packageName)
  await mkdir(installed, { recursive: true })
  await run('tar', ['-xzf', join(scratch, packed[0].filename), '-C', installed, '--strip-components=1'], scratch)
  for (const entry of await readdir(join(root, 'node_modules'))) {
    if (entry.startsWith('.') || entry === packageName) continue
    await symlink(join(root, 'node_modules', entry), join(modules, entry), 'dir')
  }

  t.test('runs no script when it is installed', async (t) => {
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { scripts?: Record<string, string>, license?: string }
    const installScripts = ['preinstall', 'install', 'postinstall', 'prepare', 'preprepare', 'postprepare']
    t.same(Object.keys(manifest.scripts ?? {}).filter((name) => installScripts.includes(name)), [])
    t.equal(manifest.license, 'MIT')
    t.match(await readFile(join(installed, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 fastify-cognito-jwt contributors\n/)
  })

  t.test('require() returns the plugin, and the main entry leaves the testing kit alone', async (t) => {
    await writeFile(join(scratch, 'check.cjs'), cjsCheck)
    const found = findings(await run(process.execPath, ['check.cjs'], scratch))
    t.equal(found.type, 'function')
    t.equal(found.named, true, 'require(...).cognitoAuth is the same function')
    t.equal(found.default, true, 'require(...).default is the same function')
    t.equal(found.errorClass, 'function', 'the error classes are exported')
    t.equal(found.main, join(installed, 'dist', 'index.cjs'))
    const loaded = found.loadedByMain as string[]
    t.ok(loaded.includes(join(installed, 'dist', 'index.js')), 'the main entry was loaded')
    t.same(loaded.filter((file) => file.includes('testing')), [], 'testing.js was not loaded by the main entry')
    t.same(found.authenticated, [200, { sub: 'cjs-user' }])
    t.same(found.refused, [401, 'FST_COGNITO_NO_TOKEN'])
  })

  t.test('import gives the same plugin, as default and as cognitoAuth', async (t) => {
    await writeFile(join(scratch, 'check.mjs'), esmCheck)
    const found = findings(await run(process.execPath, ['check.mjs'], scratch))
    t.same(found, {
      type: 'function',
      named: true,
      sameAsRequire: true,
      sameErrorClass: true,
      sameLocalIssuer: true,
      authenticated: [200, { sub: 'esm-user' }]
    })
  })

  t.test('the declarations type a consumer, ESM and CommonJS', async (t) => {
    t.ok(existsSync(join(installed, 'dist', 'index.d.mts')))
    await writeFile(join(scratch, 'consumer.mts'), esmConsumer)
    await writeFile(join(scratch, 'consumer.cts'), cjsConsumer)
    await writeFile(join(scratch, 'tsconfig.json'), consumerTsconfig)
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    await t.resolves(run(process.execPath, [tsc, '-p', 'tsconfig.json'], scratch), 'tsc found no error')
  })
})
