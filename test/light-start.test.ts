/**
 * A light start: get-jwks and undici are loaded by the first key fetch, never with keys given up
 * front; fast-jwt by the first key prepared; ajv (for `claims` schemas) not by the import (Fastify
 * itself loads it for route schemas once an instance is built, and the plugin uses that copy). Each case runs in a fresh Node.js process (with the
 * tsx loader), which reports what `require.cache` holds at each stage.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'

const ROOT = join(__dirname, '..')
const WATCHED = ['get-jwks', 'undici', 'fast-jwt', 'lru-cache', 'asn1.js']

/** The child's program: the stages it reports, as one JSON line each. */
const CHILD = `
const watched = ${JSON.stringify(WATCHED)}
const loaded = () => watched.filter((name) => Object.keys(require.cache).some((path) => path.includes('/node_modules/' + name + '/')))
const ajvLoaded = () => Object.keys(require.cache).some((path) => path.includes('/node_modules/ajv/'))
const report = (stage, extra) => console.log(JSON.stringify({ stage, loaded: loaded(), ...extra }))
async function main (mode) {
  const cognitoAuth = require('./index.ts').default
  report('import', { ajv: ajvLoaded() })
  const Fastify = require('fastify')
  const { LocalIssuer } = require('./testing.ts')
  const issuer = new LocalIssuer()
  if (mode === 'fetch') await issuer.listen()
  const app = Fastify()
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), jwksCache: { prefetch: false } })
  app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims.sub }))
  await app.ready()
  report('ready')
  const response = await app.inject({ url: '/', headers: { authorization: 'Bearer ' + issuer.idToken({ sub: 'alice' }) } })
  report('first request', { status: response.statusCode, body: response.json() })
  await app.close()
  await issuer.close()
}
main(process.argv[1]).catch((err) => { console.error(err); process.exitCode = 1 })
`

interface Stage {
  stage: string
  loaded: string[]
  ajv?: boolean
  status?: number
  body?: unknown
}

function run (mode: 'up-front' | 'fetch'): Stage[] {
  // The child's coverage is left out: its modules are loaded through another path than the tests'.
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  const { status, stdout, stderr } = spawnSync(process.execPath, ['--import', 'tsx', '-e', CHILD, mode], { cwd: ROOT, env, encoding: 'utf8' })
  if (status !== 0) throw new Error(`child failed: ${stderr}`)
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Stage)
}

t.test('keys given up front: neither get-jwks nor undici is ever loaded', async (t) => {
  const [imported, ready, first] = run('up-front')
  t.same(imported, { stage: 'import', loaded: [], ajv: false }, 'the import loads none of them, nor fast-jwt, nor ajv')
  t.same(ready.loaded, ['fast-jwt', 'asn1.js'], 'fast-jwt comes with the first key prepared, at register')
  t.same(first, { stage: 'first request', loaded: ['fast-jwt', 'asn1.js'], status: 200, body: { sub: 'alice' } }, 'an authenticated request loads nothing more')
})

t.test('with a JWKS URI: get-jwks and undici come with the first fetch', async (t) => {
  const [imported, ready, first] = run('fetch')
  t.same(imported.loaded, [], 'not at import')
  t.same(ready.loaded, [], 'nor at register and ready (no prefetch)')
  t.match(first, { stage: 'first request', status: 200, body: { sub: 'alice' } })
  t.same(first.loaded, WATCHED, 'the first request fetched the keys, which loaded them')
})
