import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import cognitoAuth from '../index'
import { AlbIssuer, LocalIssuer } from '../testing'
import { buildApp } from '../examples/app'
import { demoChecks, formatResult, runCheck, summarize, type CheckResult } from '../examples/checks'
import { cognitoOptionsFromEnv, curlLines, describeListenError, portFromEnv } from '../examples/demo-runner'
import { UserStore } from '../examples/users'

const root = resolve(__dirname, '..')

/** What the helpers below need of a test: somewhere to register cleanup. */
type Test = Pick<typeof t, 'teardown'>

function setup (test: Test, filename?: string): { app: FastifyInstance, users: UserStore, issuer: LocalIssuer } {
  const issuer = new LocalIssuer()
  const users = new UserStore(filename)
  // Keys handed over in memory: no network for the inject tests.
  const app = buildApp({ cognito: issuer.pluginOptions(), users })
  test.teardown(async () => {
    await app.close()
    users.close()
  })
  return { app, users, issuer }
}

async function get (app: FastifyInstance, url: string, token?: string): Promise<{ status: number, body: Record<string, unknown>, challenge: unknown }> {
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }
  const response = await app.inject({ method: 'GET', url, headers })
  return { status: response.statusCode, body: response.json(), challenge: response.headers['www-authenticate'] }
}

const hourAgo = (): number => Math.floor(Date.now() / 1000) - 3600

t.test('GET / is public', async (t) => {
  const { app } = setup(t)
  const { status, body } = await get(app, '/')
  t.equal(status, 200)
  t.equal(body.hello, 'world')
})

t.test('POST /logout: every token of the sign-in is refused afterwards, other sign-ins pass', async (t) => {
  const { app, issuer } = setup(t)
  const sub = '0b6d37a4-93a1-4d4f-8a39-6f1f7e1f2a10'
  const id = issuer.idToken({ sub })
  const origin = JSON.parse(Buffer.from(id.split('.')[1], 'base64url').toString()).origin_jti as string
  const access = issuer.accessToken({ sub, origin_jti: origin })
  t.equal((await get(app, '/me', id)).status, 200)
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${access}` } })
  t.equal(logout.statusCode, 204)
  const after = await get(app, '/me', id)
  t.equal(after.status, 401)
  t.equal(after.body.code, 'FST_COGNITO_TOKEN_REVOKED')
  t.equal((await get(app, '/me', issuer.idToken({ sub }))).status, 200, 'a new sign-in passes')
  t.equal((await app.inject({ method: 'POST', url: '/logout' })).statusCode, 401, 'no token, no logout')
})

t.test('GET /alb/me: the user from the load balancer\'s headers, never from a Bearer token', async (t) => {
  const issuer = new LocalIssuer()
  const alb = new AlbIssuer({ pool: issuer })
  await alb.listen()
  const users = new UserStore()
  const app = buildApp({ cognito: issuer.pluginOptions(), users, alb: alb.albOptions() })
  t.teardown(async () => {
    await app.close()
    users.close()
    await alb.close()
  })
  const sub = '2f9c1d7e-5b8a-4e3f-9c6d-0a1b2c3d4e5f'
  const ok = await app.inject({ url: '/alb/me', headers: alb.headers({ sub, email: 'dave@example.com' }) })
  t.equal(ok.statusCode, 200)
  t.match(ok.json(), { user: { id: Number, sub }, email: 'dave@example.com' })
  t.equal((await get(app, '/alb/me', issuer.accessToken({ sub }))).body.code, 'FST_COGNITO_NO_TOKEN')
  t.equal((await get(app, '/me', issuer.idToken({ sub }))).status, 200, 'the Bearer API is unchanged beside it')
})

t.test('wrong pool options fail startup with the plugin\'s own error', async (t) => {
  const users = new UserStore()
  t.teardown(() => users.close())
  const app = buildApp({ cognito: { userPoolId: 'no-region', clientId: 'web' }, users })
  await t.rejects(async () => app.ready(), { code: 'FST_COGNITO_INVALID_OPTION', message: /userPoolId/ })
})

t.test('GET /me answers the user row of a valid token, 401 otherwise', async (t) => {
  const { app, issuer } = setup(t)
  const sub = '6d1b3a52-0f2c-4c43-9a8e-1f0f3c2b9d11'
  const ok = await get(app, '/me', issuer.idToken({ sub, email: 'carol@example.com' }))
  t.equal(ok.status, 200)
  t.match(ok.body, { id: Number, sub, email: 'carol@example.com', createdAt: String })

  const none = await get(app, '/me')
  t.equal(none.status, 401)
  t.equal(none.body.code, 'FST_COGNITO_NO_TOKEN')
  t.equal(none.challenge, 'Bearer realm="api"')

  const expired = await get(app, '/me', issuer.idToken({ iat: hourAgo() - 60, exp: hourAgo() }))
  t.equal(expired.status, 401)
  t.equal(expired.body.code, 'FST_COGNITO_TOKEN_EXPIRED')

  const otherClient = await get(app, '/me', issuer.idToken({ aud: 'another-app-client' }))
  t.equal(otherClient.status, 401)
  t.equal(otherClient.body.code, 'FST_COGNITO_TOKEN_INVALID')

  const forged = await get(app, '/me', issuer.idToken({}, { signingKey: LocalIssuer.foreignKey() }))
  t.equal(forged.status, 401)
  t.equal(forged.body.code, 'FST_COGNITO_TOKEN_INVALID')

  // tokenUse 'any': the same user's access token resolves to the same row.
  const access = await get(app, '/me', issuer.accessToken({ sub }))
  t.equal(access.status, 200)
  t.equal(access.body.id, ok.body.id)
})

t.test('GET /admin needs the group admin', async (t) => {
  const { app, issuer } = setup(t)
  const none = await get(app, '/admin')
  t.equal(none.status, 401)
  t.equal(none.body.code, 'FST_COGNITO_NO_TOKEN')

  const user = await get(app, '/admin', issuer.idToken({ 'cognito:groups': ['users'] }))
  t.equal(user.status, 403)
  t.equal(user.body.code, 'FST_COGNITO_FORBIDDEN')
  t.match(user.challenge, /error="insufficient_scope"/)

  const noGroups = await get(app, '/admin', issuer.idToken({ 'cognito:groups': undefined }))
  t.equal(noGroups.status, 403)

  const admin = await get(app, '/admin', issuer.idToken({ 'cognito:groups': ['users', 'admin'] }))
  t.equal(admin.status, 200)
  // Three users were resolved: the refused ones had valid tokens, so they have rows too.
  t.same(admin.body, { users: 3 })
})

t.test('GET /orders needs an access token with the scope orders/read', async (t) => {
  const { app, issuer } = setup(t)
  const sub = 'f3f0c0de-1c1e-4a55-8d1b-0a6f0e3c2b7a'
  const none = await get(app, '/orders')
  t.equal(none.status, 401)
  t.equal(none.body.code, 'FST_COGNITO_NO_TOKEN')

  const idToken = await get(app, '/orders', issuer.idToken({ sub }))
  t.equal(idToken.status, 403)
  t.equal(idToken.body.code, 'FST_COGNITO_FORBIDDEN')
  t.match(idToken.challenge, /scope="orders\/read"/)

  const otherScope = await get(app, '/orders', issuer.accessToken({ sub, scope: 'openid orders/write' }))
  t.equal(otherScope.status, 403)
  t.equal(otherScope.body.code, 'FST_COGNITO_FORBIDDEN')

  const ok = await get(app, '/orders', issuer.accessToken({ sub, scope: 'openid orders/read' }))
  t.equal(ok.status, 200)
  const me = await get(app, '/me', issuer.idToken({ sub }))
  t.equal(ok.body.owner, me.body.id)
  t.match(ok.body.orders, [{ id: 1, item: String }])
})

t.test('the email comes from ID tokens; access tokens leave it unchanged', async (t) => {
  const { app, users, issuer } = setup(t)
  const sub = '0b7e0e57-3f5a-4a0b-b6a4-4b8e2a9c0e01'
  const first = await get(app, '/me', issuer.accessToken({ sub }))
  t.equal(first.body.email, null)
  const withEmail = await get(app, '/me', issuer.idToken({ sub, email: 'dave@example.com' }))
  t.equal(withEmail.body.email, 'dave@example.com')
  const access = await get(app, '/me', issuer.accessToken({ sub }))
  t.equal(access.body.email, 'dave@example.com')
  const changed = await get(app, '/me', issuer.idToken({ sub, email: 'dave@example.org' }))
  t.equal(changed.body.email, 'dave@example.org')
  t.equal(new Set([first, withEmail, access, changed].map((r) => r.body.id)).size, 1)
  t.equal(users.count(), 1)

  const noEmail = await get(app, '/me', issuer.idToken({ email: undefined }))
  t.equal(noEmail.status, 200)
  t.equal(noEmail.body.email, null)
})

t.test('50 concurrent first requests of a new user create exactly one row', async (t) => {
  const { app, users, issuer } = setup(t)
  const token = issuer.idToken()
  const responses = await Promise.all(Array.from({ length: 50 }, async () => get(app, '/me', token)))
  t.same(responses.map((r) => r.status), Array(50).fill(200))
  t.equal(new Set(responses.map((r) => r.body.id)).size, 1)
  t.equal(users.count(), 1)
})

t.test('a later request of the same user reuses the row', async (t) => {
  const { app, users, issuer } = setup(t)
  const sub = '9a3c1f4e-2b6d-4e8f-a1c3-5d7e9f0b2c4d'
  const first = await get(app, '/me', issuer.idToken({ sub }))
  const second = await get(app, '/me', issuer.idToken({ sub }))
  t.same(second.body, first.body)
  t.equal(users.count(), 1)
  // Another user gets a row of their own.
  const other = await get(app, '/me', issuer.idToken())
  t.not(other.body.id, first.body.id)
  t.equal(users.count(), 2)
})

t.test('two connections to one database file (as two processes would) share the user rows', async (t) => {
  const file = join(t.testdir(), 'users.db')
  const a = setup(t, file)
  const b = setup(t, file)
  const sub = '3e5a7c9b-1d2f-4a6b-8c0d-2e4f6a8b0c1d'
  const tokenA = a.issuer.idToken({ sub })
  const tokenB = b.issuer.idToken({ sub })
  const responses = await Promise.all(Array.from({ length: 50 }, async (_, i) => i % 2 === 0 ? get(a.app, '/me', tokenA) : get(b.app, '/me', tokenB)))
  t.equal(new Set(responses.map((r) => r.body.id)).size, 1)
  t.equal(a.users.count(), 1)
  t.equal(b.users.count(), 1)
})

t.test('cognitoOptionsFromEnv maps the environment to plugin options', async (t) => {
  t.equal(cognitoOptionsFromEnv({}), undefined)
  t.equal(cognitoOptionsFromEnv({ COGNITO_USER_POOL: '', COGNITO_AUDIENCE: '', COGNITO_AWS_REGION: 'eu-west-1' }), undefined)

  const options = cognitoOptionsFromEnv({ COGNITO_USER_POOL: 'eu-west-1_AbC123', COGNITO_AWS_REGION: 'eu-west-1', COGNITO_AUDIENCE: 'client1' })
  if (options === undefined) throw new Error('the pool variables gave no options')
  t.same(options, { userPoolId: 'eu-west-1_AbC123', region: 'eu-west-1', clientId: ['client1'], issuer: undefined, jwksUri: undefined })

  t.same(cognitoOptionsFromEnv({
    COGNITO_USER_POOL: 'local_Pool1',
    COGNITO_AUDIENCE: 'web, mobile',
    COGNITO_ISSUER: 'http://127.0.0.1:9229/local_Pool1',
    COGNITO_JWKS_URI: 'http://127.0.0.1:9229/local_Pool1/.well-known/jwks.json'
  }), {
    userPoolId: 'local_Pool1',
    region: undefined,
    clientId: ['web', 'mobile'],
    issuer: 'http://127.0.0.1:9229/local_Pool1',
    jwksUri: 'http://127.0.0.1:9229/local_Pool1/.well-known/jwks.json'
  })

  t.throws(() => cognitoOptionsFromEnv({ COGNITO_USER_POOL: 'eu-west-1_AbC123' }), /Set both COGNITO_USER_POOL and COGNITO_AUDIENCE/)
  t.throws(() => cognitoOptionsFromEnv({ COGNITO_AUDIENCE: 'client1' }), /Set both COGNITO_USER_POOL and COGNITO_AUDIENCE/)

  // The plugin accepts the mapped options (no key fetch: nothing leaves the machine)...
  const app = Fastify()
  t.teardown(async () => app.close())
  await app.register(cognitoAuth, { ...options, jwksCache: { prefetch: false }, resolveUser: () => null })
  // ...and refuses a region that does not match the pool.
  const wrongRegion = cognitoOptionsFromEnv({ COGNITO_USER_POOL: 'eu-west-1_AbC123', COGNITO_AWS_REGION: 'us-east-1', COGNITO_AUDIENCE: 'client1' })
  if (wrongRegion === undefined) throw new Error('the pool variables gave no options')
  const refusing = Fastify()
  t.teardown(async () => refusing.close())
  await t.rejects(async () => refusing.register(cognitoAuth, { ...wrongRegion, jwksCache: { prefetch: false }, resolveUser: () => null }), { code: 'FST_COGNITO_INVALID_OPTION' })
})

t.test('portFromEnv', async (t) => {
  t.equal(portFromEnv({}), 3000)
  t.equal(portFromEnv({ PORT: '' }), 3000)
  t.equal(portFromEnv({ PORT: '0' }), 0)
  t.equal(portFromEnv({ PORT: '8080' }), 8080)
  for (const PORT of ['http', '-1', '65536', '80.5']) {
    t.throws(() => portFromEnv({ PORT }), { message: `PORT must be a port number from 0 to 65535, not "${PORT}"` })
  }
})

t.test('curlLines ends each command with the answer to expect, aligned', async (t) => {
  const lines = curlLines('http://127.0.0.1:3000')
  t.equal(lines[0], `${'curl -i http://127.0.0.1:3000/'.padEnd(lines[2].indexOf('  # expect'))}  # expect 200`)
  t.equal(lines[1].slice(lines[1].indexOf('#')), '# expect 401 FST_COGNITO_NO_TOKEN')
  t.equal(lines[3], `${'curl -i -H "Authorization: Bearer $ID_TOKEN" http://127.0.0.1:3000/admin'.padEnd(lines[3].indexOf('  # expect'))}  # expect 403 FST_COGNITO_FORBIDDEN`)
  t.equal(lines[7], 'curl -i -X POST -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:3000/logout  # expect 204', 'the longest command sets the column')
  t.equal(lines[8].slice(lines[8].indexOf('#')), '# expect 401 FST_COGNITO_TOKEN_REVOKED', 'then the signed-out token is refused')
  t.equal(new Set(lines.map((line) => line.indexOf('  # expect'))).size, 1, 'the comments line up')
})

t.test('describeListenError says when the port is taken', async (t) => {
  const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' })
  t.match(describeListenError(inUse, 3000).message, /^Port 3000 on 127\.0\.0\.1 is already in use/)
  const other = Object.assign(new Error('listen EACCES'), { code: 'EACCES' })
  t.equal(describeListenError(other, 80), other)
})

t.test('a check whose answer differs fails, and so does the run', async (t) => {
  const { app, issuer } = setup(t)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const passing = await runCheck(url, { path: '/me', what: 'ID token', token: issuer.idToken(), expected: { status: 200 } })
  t.equal(passing.pass, true)
  const wrongStatus = await runCheck(url, { path: '/me', what: 'no token', expected: { status: 200 } })
  t.match(wrongStatus, { pass: false, status: 401, code: 'FST_COGNITO_NO_TOKEN' })
  t.equal(formatResult(wrongStatus), 'FAIL  GET /me      no token                         expected 200, got 401 FST_COGNITO_NO_TOKEN')
  const wrongCode = await runCheck(url, { path: '/me', what: 'no token', expected: { status: 401, code: 'FST_COGNITO_TOKEN_EXPIRED' } })
  t.equal(wrongCode.pass, false)

  t.same(summarize([passing]), { line: 'All 1 checks passed.', exitCode: 0 })
  t.same(summarize([passing, wrongStatus, wrongCode] as CheckResult[]), { line: '2 of 3 checks failed.', exitCode: 1 })
  // The demo's own list covers every route.
  t.same(new Set(demoChecks(issuer).map((check) => check.path)), new Set(['/', '/me', '/admin', '/orders', '/logout']))
  t.same(new Set(demoChecks(issuer, new AlbIssuer({ pool: issuer })).map((check) => check.path)), new Set(['/', '/me', '/admin', '/orders', '/logout', '/alb/me']))
})

// The demo as a reader runs it: `node --import tsx examples/demo.ts`, in a child process.

/** The environment of the test run, without settings that would change the demo's mode. */
function demoEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('COGNITO_') && key !== 'PORT' && key !== 'DEMO_DB') env[key] = value
  }
  return { ...env, ...extra }
}

interface Demo {
  stdout: () => string
  stderr: () => string
  /** Resolves with the first match of `pattern` in stdout; rejects if the demo exits first. */
  waitFor: (pattern: RegExp) => Promise<RegExpMatchArray>
  exit: Promise<number | null>
  stop: () => void
}

/**
 * Runs `node examples/demo.ts` with this test's own TypeScript loader (`npm run demo` uses tsx),
 * so that coverage recorded in the child lines up with this process's.
 */
function startDemo (test: Test, args: string[], env: Record<string, string>, nodeArgs = process.execArgv): Demo {
  const child = spawn(process.execPath, [...nodeArgs, 'examples/demo.ts', ...args], { cwd: root, env: demoEnv(env) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  test.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exit
  })
  const waitFor = async (pattern: RegExp): Promise<RegExpMatchArray> => new Promise((resolve, reject) => {
    const look = (): void => {
      const match = stdout.match(pattern)
      if (match === null) return
      child.stdout.off('data', look)
      resolve(match)
    }
    child.stdout.on('data', look)
    exit.then(() => reject(new Error(`demo exited before printing ${pattern}:\n${stdout}\n${stderr}`)), reject)
    look()
  })
  return { stdout: () => stdout, stderr: () => stderr, waitFor, exit, stop: () => child.kill('SIGTERM') }
}

t.test('demo --once checks every case and exits 0', async (t) => {
  const file = join(t.testdir(), 'demo.db')
  const demo = startDemo(t, ['--once'], { DEMO_DB: file })
  t.equal(await demo.exit, 0, demo.stderr())
  const lines = demo.stdout().trim().split('\n')
  t.same(lines, [
    'PASS  GET /        no token                         expected 200, got 200',
    'PASS  GET /me      ID token                         expected 200, got 200',
    'PASS  GET /me      no token                         expected 401 FST_COGNITO_NO_TOKEN, got 401 FST_COGNITO_NO_TOKEN',
    'PASS  GET /me      expired ID token                 expected 401 FST_COGNITO_TOKEN_EXPIRED, got 401 FST_COGNITO_TOKEN_EXPIRED',
    'PASS  GET /me      ID token of another app client   expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /me      token signed with a foreign key  expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /admin   ID token, not in group admin     expected 403 FST_COGNITO_FORBIDDEN, got 403 FST_COGNITO_FORBIDDEN',
    'PASS  GET /admin   ID token in group admin          expected 200, got 200',
    'PASS  GET /orders  access token, scope orders/read  expected 200, got 200',
    'PASS  GET /orders  access token without the scope   expected 403 FST_COGNITO_FORBIDDEN, got 403 FST_COGNITO_FORBIDDEN',
    'PASS  GET /orders  ID token (has no scopes)         expected 403 FST_COGNITO_FORBIDDEN, got 403 FST_COGNITO_FORBIDDEN',
    'PASS  POST /logout ID token in group admin          expected 204, got 204',
    'PASS  GET /admin   the same token, signed out       expected 401 FST_COGNITO_TOKEN_REVOKED, got 401 FST_COGNITO_TOKEN_REVOKED',
    'PASS  GET /alb/me  load balancer headers            expected 200, got 200',
    'PASS  GET /alb/me  Bearer token, no ALB headers     expected 401 FST_COGNITO_NO_TOKEN, got 401 FST_COGNITO_NO_TOKEN',
    'PASS  GET /alb/me  ALB token signed by another key  expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /alb/me  another user\'s access token      expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'All 17 checks passed.'
  ])
  // DEMO_DB kept the users on disk: Alice and Bob, and the user of the scope-less access token.
  const users = new UserStore(file)
  t.teardown(() => users.close())
  t.equal(users.count(), 3)
})

t.test('npm run demo -- --once, exactly as a reader runs it', async (t) => {
  // The command of the `demo` script. It records no coverage (the switch is documented by tap's
  // @tapjs/processinfo): tsx compiles TypeScript differently from the test loader, and coverage
  // of two different compilations of one file does not merge.
  const demo = startDemo(t, ['--once'], { _TAPJS_PROCESSINFO_COVERAGE_: '0' }, ['--import', 'tsx'])
  t.equal(await demo.exit, 0, demo.stderr())
  const lines = demo.stdout().trim().split('\n')
  t.equal(lines.filter((line) => line.startsWith('PASS  ')).length, 17)
  t.equal(lines.at(-1), 'All 17 checks passed.')
})

t.test('demo serves with a local user pool until SIGTERM', async (t) => {
  const demo = startDemo(t, [], { PORT: '0' })
  await demo.waitFor(/^curl .*\$ID_TOKEN.*\/orders +# expect .*\n/m)
  const url = demo.stdout().match(/API listening on (http:\/\/127\.0\.0\.1:\d+)/)?.[1]
  const token = demo.stdout().match(/^ID_TOKEN=(\S+)$/m)?.[1]
  t.match(demo.stdout(), /^curl -i -H "Authorization: Bearer \$ID_TOKEN" http:\/\/127\.0\.0\.1:\d+\/me +# expect 200$/m)
  const response = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(response.status, 200)
  t.match(await response.json(), { id: 1, email: 'alice@example.com' })

  // Every printed curl line says what it answers, and answers that.
  const tokens = Object.fromEntries([...demo.stdout().matchAll(/^([A-Z_]+_TOKEN)=(\S+)$/gm)].map(([, name, value]) => [name, value]))
  const lines = demo.stdout().split('\n').filter((line) => line.startsWith('curl '))
  t.equal(lines.length, 9)
  for (const line of lines) {
    const parsed = line.match(/^curl -i (?:-X (POST) )?(?:-H "Authorization: Bearer \$([A-Z_]+)" )?(\S+) +# expect (\d{3})(?: (FST_COGNITO_[A-Z_]+))?$/)
    if (parsed === null) {
      t.fail(`not a curl line with its expected answer: ${line}`)
      continue
    }
    const [, method = 'GET', tokenName, target, status, code] = parsed
    const headers: Record<string, string> = tokenName === undefined ? {} : { authorization: `Bearer ${tokens[tokenName]}` }
    const answer = await fetch(target, { method, headers })
    const text = await answer.text()
    const body = (text === '' ? {} : JSON.parse(text)) as { code?: string }
    t.same([answer.status, body.code], [Number(status), code], line)
  }
  demo.stop()
  t.equal(await demo.exit, 0, demo.stderr())
  t.match(demo.stdout(), /SIGTERM: stopping\n$/)
})

t.test('demo says so when the port is taken, and exits 1', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const demo = startDemo(t, [], { PORT: String(port) })
  t.equal(await demo.exit, 1)
  t.equal(demo.stderr(), `Port ${port} on 127.0.0.1 is already in use: stop what uses it, or choose another port, e.g. PORT=3001 npm run demo\n`)
  t.notMatch(demo.stdout(), /API listening/)
})

t.test('demo serves against a user pool named in the environment, printing no tokens', async (t) => {
  // An emulated pool (as cognito-local would be): its own issuer and JWKS URL, on 127.0.0.1.
  const pool = new LocalIssuer({ userPoolId: 'local_Pool1', clientId: 'web', issuer: 'http://127.0.0.1:9229/local_Pool1' })
  const jwksUri = await pool.listen()
  t.teardown(async () => pool.close())
  const demo = startDemo(t, [], {
    PORT: '0',
    COGNITO_USER_POOL: 'local_Pool1',
    COGNITO_AUDIENCE: 'web,mobile',
    COGNITO_ISSUER: pool.issuer,
    COGNITO_JWKS_URI: jwksUri
  })
  const [, url] = await demo.waitFor(/API listening on (http:\/\/127\.0\.0\.1:\d+) for user pool local_Pool1/)
  await demo.waitFor(/\/me\n/)
  t.notMatch(demo.stdout(), /TOKEN=/)
  const response = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${pool.idToken({ email: 'erin@example.com' })}` } })
  t.equal(response.status, 200)
  t.match(await response.json(), { email: 'erin@example.com' })
  const local = new LocalIssuer()
  const refused = await fetch(`${url}/me`, { headers: { authorization: `Bearer ${local.idToken()}` } })
  t.equal(refused.status, 401)
  demo.stop()
  t.equal(await demo.exit, 0, demo.stderr())
})

t.test('the tenants example: a SQLite tenant table as the allow-list of user pools', async (t) => {
  // Run with this test's loader, as the demo is, so that its coverage counts.
  const child = spawn(process.execPath, [...process.execArgv, 'examples/tenants.ts'], { cwd: root, env: demoEnv({}) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'exit')
  t.equal(code, 0, stderr)
  t.same(stdout.trim().split('\n'), [
    'PASS  GET /orders  acme user                        expected 200, got 200',
    'PASS  GET /orders  globex user                      expected 200, got 200',
    'PASS  GET /orders  a pool that is no tenant         expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /orders  acme claims, globex signature    expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /orders  globex, removed: asked again     expected 200, got 200',
    'PASS  GET /orders  globex, removed from the table   expected 401 FST_COGNITO_TOKEN_INVALID, got 401 FST_COGNITO_TOKEN_INVALID',
    'PASS  GET /orders  acme, still a tenant             expected 200, got 200',
    'All 7 checks passed.'
  ])
})
