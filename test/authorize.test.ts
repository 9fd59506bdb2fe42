/**
 * Groups and scopes: `requireGroups`/`requireScopes` as hooks, and the same needs declared in a
 * route's `config.cognito`. Every refusal is checked on status, code and `WWW-Authenticate`.
 */
import Fastify, { type FastifyInstance, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cognitoAuth from '../index'
import { LocalIssuer } from '../testing'

const NO_TOKEN = 'Bearer realm="api"'
const FORBIDDEN = 'Bearer realm="api", error="insufficient_scope", error_description="Insufficient permissions"'
const INVALID = 'Bearer realm="api", error="invalid_token", error_description="The token is invalid"'

const issuer = new LocalIssuer()

function bearer (token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

/** An app that accepts ID and access tokens of the local pool; closed when `t` ends. */
async function buildApp (t: Test): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cognitoAuth, { ...issuer.pluginOptions(), tokenUse: 'any' })
  return app
}

function whoAmI (request: FastifyRequest): { sub: string | null } {
  return { sub: request.cognitoClaims?.sub ?? null }
}

function refused (t: Test, res: LightMyRequestResponse, status: number, code: string, challenge: string): void {
  t.equal(res.statusCode, status, 'status')
  t.equal(res.json<{ code: string }>().code, code, 'code')
  t.equal(res.headers['www-authenticate'], challenge, 'WWW-Authenticate')
}

function accepted (t: Test, res: LightMyRequestResponse, sub: string): void {
  t.equal(res.statusCode, 200, 'status')
  t.same(res.json(), { sub }, 'the handler ran for this user')
  t.equal(res.headers['www-authenticate'], undefined, 'no challenge')
}

t.test('requireGroups', async (t) => {
  const app = await buildApp(t)
  app.get('/admin', { onRequest: [app.authenticate, app.requireGroups('admin')] }, whoAmI)
  app.get('/any', { onRequest: [app.authenticate, app.requireGroups(['admin', 'editors'])] }, whoAmI)
  app.get('/all', { onRequest: [app.authenticate, app.requireGroups(['admin', 'editors'], { match: 'all' })] }, whoAmI)
  app.get('/pre-handler', { onRequest: app.authenticate, preHandler: app.requireGroups('admin') }, whoAmI)

  const admin = issuer.idToken({ sub: 'admin-user', 'cognito:groups': ['admin'] })
  const editor = issuer.idToken({ sub: 'editor-user', 'cognito:groups': ['editors'] })
  const both = issuer.accessToken({ sub: 'both-user', 'cognito:groups': ['editors', 'admin'] })
  const user = issuer.idToken({ sub: 'plain-user', 'cognito:groups': ['users'] })

  t.test('a member of the group passes', async (t) => {
    accepted(t, await app.inject({ url: '/admin', headers: bearer(admin) }), 'admin-user')
    accepted(t, await app.inject({ url: '/pre-handler', headers: bearer(admin) }), 'admin-user')
  })

  t.test('a user outside the group is forbidden, without naming the group', async (t) => {
    refused(t, await app.inject({ url: '/admin', headers: bearer(user) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    refused(t, await app.inject({ url: '/pre-handler', headers: bearer(editor) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('several groups: any one of them by default', async (t) => {
    accepted(t, await app.inject({ url: '/any', headers: bearer(admin) }), 'admin-user')
    accepted(t, await app.inject({ url: '/any', headers: bearer(editor) }), 'editor-user')
    refused(t, await app.inject({ url: '/any', headers: bearer(user) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('several groups with match "all": every one of them', async (t) => {
    accepted(t, await app.inject({ url: '/all', headers: bearer(both) }), 'both-user')
    refused(t, await app.inject({ url: '/all', headers: bearer(admin) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    refused(t, await app.inject({ url: '/all', headers: bearer(editor) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('a token without cognito:groups belongs to no group', async (t) => {
    const none = issuer.idToken({ 'cognito:groups': undefined })
    refused(t, await app.inject({ url: '/admin', headers: bearer(none) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('a cognito:groups that is not an array of strings refuses the token itself', async (t) => {
    for (const groups of ['admin', { admin: true }, 1, null, ['admin', 1]]) {
      const odd = issuer.idToken({ 'cognito:groups': groups as unknown as string[] })
      refused(t, await app.inject({ url: '/admin', headers: bearer(odd) }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    }
  })

  t.test('group names are compared exactly', async (t) => {
    for (const groups of [['Admin'], ['admin '], ['administrators']]) {
      const near = issuer.idToken({ 'cognito:groups': groups })
      refused(t, await app.inject({ url: '/admin', headers: bearer(near) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    }
  })
})

t.test('requireScopes', async (t) => {
  const app = await buildApp(t)
  app.get('/read', { onRequest: [app.authenticate, app.requireScopes('orders/read')] }, whoAmI)
  app.get('/any', { onRequest: [app.authenticate, app.requireScopes(['orders/read', 'orders/write'])] }, whoAmI)
  app.get('/all', { onRequest: [app.authenticate, app.requireScopes(['orders/read', 'orders/write'], { match: 'all' })] }, whoAmI)

  const reader = issuer.accessToken({ sub: 'reader', scope: 'openid email orders/read' })
  const writer = issuer.accessToken({ sub: 'writer', scope: 'orders/write' })
  const both = issuer.accessToken({ sub: 'both', scope: 'orders/write openid orders/read' })
  const signIn = issuer.accessToken({ sub: 'signin' })
  const scopeRead = `${FORBIDDEN}, scope="orders/read"`
  const scopeBoth = `${FORBIDDEN}, scope="orders/read orders/write"`

  t.test('an access token with the scope passes', async (t) => {
    accepted(t, await app.inject({ url: '/read', headers: bearer(reader) }), 'reader')
    accepted(t, await app.inject({ url: '/read', headers: bearer(both) }), 'both')
  })

  t.test('without the scope: 403, and the challenge names the scope needed', async (t) => {
    refused(t, await app.inject({ url: '/read', headers: bearer(writer) }), 403, 'FST_COGNITO_FORBIDDEN', scopeRead)
    refused(t, await app.inject({ url: '/read', headers: bearer(signIn) }), 403, 'FST_COGNITO_FORBIDDEN', scopeRead)
  })

  t.test('several scopes: any one of them by default', async (t) => {
    accepted(t, await app.inject({ url: '/any', headers: bearer(reader) }), 'reader')
    accepted(t, await app.inject({ url: '/any', headers: bearer(writer) }), 'writer')
    refused(t, await app.inject({ url: '/any', headers: bearer(signIn) }), 403, 'FST_COGNITO_FORBIDDEN', scopeBoth)
  })

  t.test('several scopes with match "all": every one of them', async (t) => {
    accepted(t, await app.inject({ url: '/all', headers: bearer(both) }), 'both')
    refused(t, await app.inject({ url: '/all', headers: bearer(reader) }), 403, 'FST_COGNITO_FORBIDDEN', scopeBoth)
    refused(t, await app.inject({ url: '/all', headers: bearer(writer) }), 403, 'FST_COGNITO_FORBIDDEN', scopeBoth)
  })

  t.test('scopes are whole space-separated words', async (t) => {
    for (const scope of ['orders/readonly', 'orders/read-all', 'xorders/read', 'orders', 'orders/read'.toUpperCase(), '']) {
      const near = issuer.accessToken({ scope })
      refused(t, await app.inject({ url: '/read', headers: bearer(near) }), 403, 'FST_COGNITO_FORBIDDEN', scopeRead)
    }
    const spaced = issuer.accessToken({ sub: 'spaced', scope: 'openid  orders/read ' })
    accepted(t, await app.inject({ url: '/read', headers: bearer(spaced) }), 'spaced')
  })

  t.test('an access token whose scope is not a string is refused itself', async (t) => {
    for (const scope of [['orders/read'], { 'orders/read': true }, 1]) {
      const odd = issuer.accessToken({ scope: scope as unknown as string })
      refused(t, await app.inject({ url: '/read', headers: bearer(odd) }), 401, 'FST_COGNITO_TOKEN_INVALID', INVALID)
    }
  })

  t.test('an ID token has no scopes, even with a scope claim', async (t) => {
    const id = issuer.idToken({ scope: 'orders/read' })
    refused(t, await app.inject({ url: '/read', headers: bearer(id) }), 403, 'FST_COGNITO_FORBIDDEN', scopeRead)
    refused(t, await app.inject({ url: '/any', headers: bearer(id) }), 403, 'FST_COGNITO_FORBIDDEN', scopeBoth)
  })
})

t.test('a requirement reached without authentication answers 401 NO_TOKEN', async (t) => {
  const app = await buildApp(t)
  let handled = 0
  const handler = async (): Promise<string> => { handled++; return 'reached' }
  app.get('/groups', { onRequest: app.requireGroups('admin') }, handler)
  app.get('/scopes', { onRequest: app.requireScopes('orders/read') }, handler)
  app.get('/anonymous', { onRequest: [app.authenticateOptional, app.requireGroups('admin')] }, handler)

  // Even a valid token does not count: only `authenticate` sets the claims the requirement reads.
  const admin = issuer.idToken({ 'cognito:groups': ['admin'] })
  for (const url of ['/groups', '/scopes']) {
    refused(t, await app.inject({ url }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url, headers: bearer(admin) }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
  }
  refused(t, await app.inject({ url: '/anonymous' }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
  t.equal(handled, 0, 'no handler ran')
  t.equal((await app.inject({ url: '/anonymous', headers: bearer(admin) })).statusCode, 200, 'optional auth with a token feeds the requirement')
})

t.test('a requirement hook can be awaited by hand', async (t) => {
  const app = await buildApp(t)
  const requireAdmin = app.requireGroups('admin')
  app.get('/manual', { onRequest: app.authenticate }, async (request, reply) => {
    await requireAdmin(request, reply)
    return whoAmI(request)
  })
  accepted(t, await app.inject({ url: '/manual', headers: bearer(issuer.idToken({ sub: 'root', 'cognito:groups': ['admin'] })) }), 'root')
  refused(t, await app.inject({ url: '/manual', headers: bearer(issuer.idToken()) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
})

t.test('group names follow Cognito: any script, punctuation, no whitespace', async (t) => {
  const app = await buildApp(t)
  const names = ['Rédaction', '管理者', "o'brien-team", 'ops"quoted"', 'a\\b', 'eu+west_1', 'ψ']
  for (const [i, name] of names.entries()) {
    app.get(`/group/${i}`, { onRequest: [app.authenticate, app.requireGroups(name)] }, whoAmI)
  }
  for (const [i, name] of names.entries()) {
    accepted(t, await app.inject({ url: `/group/${i}`, headers: bearer(issuer.idToken({ sub: `member-${i}`, 'cognito:groups': [name] })) }), `member-${i}`)
    refused(t, await app.inject({ url: `/group/${i}`, headers: bearer(issuer.idToken()) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  }
})

t.test('invalid requirements throw FST_COGNITO_INVALID_OPTION when the hook is created', async (t) => {
  const app = await buildApp(t)
  const invalid = (name: string, make: () => unknown): void => {
    t.throws(make, { code: 'FST_COGNITO_INVALID_OPTION', statusCode: 500 }, name)
  }
  invalid('group with a space', () => app.requireGroups('site admin'))
  invalid('group with a tab', () => app.requireGroups('site\tadmin'))
  invalid('group with a line feed', () => app.requireGroups('admin\n'))
  invalid('empty group name', () => app.requireGroups(''))
  invalid('empty list of groups', () => app.requireGroups([]))
  invalid('a group that is not a string', () => app.requireGroups(['admin', 42 as unknown as string]))
  invalid('groups that are not a list', () => app.requireGroups({ admin: true } as unknown as string))
  invalid('scope with a space', () => app.requireScopes('orders read'))
  invalid('scope with a double quote', () => app.requireScopes('orders"read'))
  invalid('scope with a backslash', () => app.requireScopes('orders\\read'))
  invalid('scope outside ASCII', () => app.requireScopes('commandes/lïre'))
  invalid('empty scope', () => app.requireScopes(''))
  invalid('empty list of scopes', () => app.requireScopes([]))
  invalid('unknown match', () => app.requireGroups('admin', { match: 'some' as 'any' }))
  invalid('match for scopes', () => app.requireScopes('orders/read', { match: 'ALL' as 'all' }))
  invalid('options that are a string', () => app.requireGroups(['a', 'b'], 'all' as unknown as { match: 'all' }))
  invalid('options that are null', () => app.requireScopes('orders/read', null as unknown as { match: 'all' }))

  const error = t.throws(() => app.requireScopes('orders read')) as Error
  t.match(error.message, /^Invalid option scopes: /, 'the message names the option')
  const groupError = t.throws(() => app.requireGroups('a', { match: 'x' as 'any' })) as Error
  t.match(groupError.message, /^Invalid option groups options: match must be "any" or "all"/)
})

t.test('config.cognito declares the same needs on the route', async (t) => {
  const app = await buildApp(t)
  app.get('/groups', { config: { cognito: { groups: ['admin'] } } }, whoAmI)
  app.get('/group-string', { config: { cognito: { groups: 'admin' } } }, whoAmI)
  app.get('/scopes', { config: { cognito: { scopes: ['orders/read'] } } }, whoAmI)
  app.get('/all-groups', { config: { cognito: { groups: ['admin', 'editors'], match: 'all' } } }, whoAmI)
  app.get('/both', { config: { cognito: { groups: 'admin', scopes: 'orders/read' } } }, whoAmI)
  app.get('/authenticated', { config: { cognito: {} } }, whoAmI)
  app.get('/optional', { config: { cognito: { optional: true } } }, whoAmI)
  app.get('/optional-group', { config: { cognito: { optional: true, groups: 'admin' } } }, whoAmI)

  const admin = issuer.idToken({ sub: 'admin', 'cognito:groups': ['admin'] })
  const adminReader = issuer.accessToken({ sub: 'admin-reader', 'cognito:groups': ['admin'], scope: 'orders/read' })
  const adminEditor = issuer.idToken({ sub: 'admin-editor', 'cognito:groups': ['editors', 'admin'] })
  const user = issuer.idToken({ sub: 'user' })

  t.test('authentication is added by the config itself', async (t) => {
    for (const url of ['/groups', '/scopes', '/both', '/authenticated']) {
      refused(t, await app.inject({ url }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
      refused(t, await app.inject({ url, headers: bearer('not.a.token') }), 401, 'FST_COGNITO_TOKEN_INVALID',
        'Bearer realm="api", error="invalid_token", error_description="The token is invalid"')
    }
    accepted(t, await app.inject({ url: '/authenticated', headers: bearer(user) }), 'user')
  })

  t.test('the HEAD route Fastify adds has the same needs', async (t) => {
    const anonymous = await app.inject({ method: 'HEAD', url: '/groups' })
    t.equal(anonymous.statusCode, 401)
    t.equal(anonymous.headers['www-authenticate'], NO_TOKEN)
    const outsider = await app.inject({ method: 'HEAD', url: '/groups', headers: bearer(user) })
    t.equal(outsider.statusCode, 403)
    t.equal(outsider.headers['www-authenticate'], FORBIDDEN)
    t.equal((await app.inject({ method: 'HEAD', url: '/groups', headers: bearer(admin) })).statusCode, 200)
  })

  t.test('groups', async (t) => {
    accepted(t, await app.inject({ url: '/groups', headers: bearer(admin) }), 'admin')
    accepted(t, await app.inject({ url: '/group-string', headers: bearer(admin) }), 'admin')
    refused(t, await app.inject({ url: '/groups', headers: bearer(user) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    refused(t, await app.inject({ url: '/group-string', headers: bearer(user) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    accepted(t, await app.inject({ url: '/all-groups', headers: bearer(adminEditor) }), 'admin-editor')
    refused(t, await app.inject({ url: '/all-groups', headers: bearer(admin) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('scopes', async (t) => {
    accepted(t, await app.inject({ url: '/scopes', headers: bearer(adminReader) }), 'admin-reader')
    refused(t, await app.inject({ url: '/scopes', headers: bearer(admin) }), 403, 'FST_COGNITO_FORBIDDEN', `${FORBIDDEN}, scope="orders/read"`)
  })

  t.test('groups and scopes together: both are required', async (t) => {
    accepted(t, await app.inject({ url: '/both', headers: bearer(adminReader) }), 'admin-reader')
    refused(t, await app.inject({ url: '/both', headers: bearer(admin) }), 403, 'FST_COGNITO_FORBIDDEN', `${FORBIDDEN}, scope="orders/read"`)
    const readerOnly = issuer.accessToken({ scope: 'orders/read' })
    refused(t, await app.inject({ url: '/both', headers: bearer(readerOnly) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  })

  t.test('optional: anonymous requests pass, invalid tokens do not', async (t) => {
    const anonymous = await app.inject({ url: '/optional' })
    t.equal(anonymous.statusCode, 200)
    t.same(anonymous.json(), { sub: null })
    accepted(t, await app.inject({ url: '/optional', headers: bearer(user) }), 'user')
    refused(t, await app.inject({ url: '/optional', headers: bearer('not.a.token') }), 401, 'FST_COGNITO_TOKEN_INVALID',
      'Bearer realm="api", error="invalid_token", error_description="The token is invalid"')
  })

  t.test('optional with groups: an anonymous request cannot be in a group', async (t) => {
    refused(t, await app.inject({ url: '/optional-group' }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
    refused(t, await app.inject({ url: '/optional-group', headers: bearer(user) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
    accepted(t, await app.inject({ url: '/optional-group', headers: bearer(admin) }), 'admin')
  })
})

t.test('config.cognito keeps the route\'s own onRequest hooks, after its own', async (t) => {
  const app = await buildApp(t)
  const seen: Array<string | null> = []
  const own = (name: string) => async (request: FastifyRequest): Promise<void> => {
    seen.push(`${name}:${request.cognitoClaims?.sub ?? 'anonymous'}`)
  }
  app.get('/single', { config: { cognito: { groups: 'admin' } }, onRequest: own('single') }, whoAmI)
  app.get('/list', { config: { cognito: { groups: 'admin' } }, onRequest: [own('first'), own('second')] }, whoAmI)
  app.get('/optional', { config: { cognito: { optional: true } }, onRequest: own('optional') }, whoAmI)

  const admin = issuer.idToken({ sub: 'admin', 'cognito:groups': ['admin'] })
  accepted(t, await app.inject({ url: '/single', headers: bearer(admin) }), 'admin')
  accepted(t, await app.inject({ url: '/list', headers: bearer(admin) }), 'admin')
  t.same(seen, ['single:admin', 'first:admin', 'second:admin'], 'the route\'s hooks ran, in order, after authentication')

  seen.length = 0
  refused(t, await app.inject({ url: '/single', headers: bearer(issuer.idToken()) }), 403, 'FST_COGNITO_FORBIDDEN', FORBIDDEN)
  refused(t, await app.inject({ url: '/list' }), 401, 'FST_COGNITO_NO_TOKEN', NO_TOKEN)
  t.same(seen, [], 'a refused request does not reach the route\'s hooks')

  t.equal((await app.inject({ url: '/optional' })).statusCode, 200)
  t.same(seen, ['optional:anonymous'])
})

t.test('an invalid config.cognito fails when the route is registered', async (t) => {
  const app = await buildApp(t)
  const cases: Array<[string, object]> = [
    ['group with a space', { groups: ['site admin'] }],
    ['empty groups', { groups: [] }],
    ['scope with a quote', { scopes: 'orders"read' }],
    ['empty scopes', { scopes: [] }],
    ['bad match', { groups: 'admin', match: 'most' }]
  ]
  for (const [name, cognito] of cases) {
    t.throws(() => app.get(`/${name.replace(/ /g, '-')}`, { config: { cognito } }, whoAmI), { code: 'FST_COGNITO_INVALID_OPTION' }, name)
  }
})

t.test('a config.cognito with a typo fails when the route is registered', async (t) => {
  const app = await buildApp(t)
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown key', { group: 'admin' }, /^Invalid option config\.cognito\.group: is not an option; did you mean groups\?$/],
    ['unknown key, nothing close', { roles: 'admin' }, /^Invalid option config\.cognito\.roles: is not an option; expected one of groups, scopes, match, optional$/],
    ['bad match', { groups: 'admin', match: 'most' }, /match must be "any" or "all"/],
    ['optional not a boolean', { optional: 'yes' }, /optional must be a boolean/],
    ['not an object', 'admin', /must be an object/],
    ['null', null, /must be an object/],
    ['a list', ['admin'], /must be an object/]
  ]
  for (const [name, cognito, message] of cases) {
    t.throws(() => app.get(`/${name.replace(/ /g, '-')}`, { config: { cognito: cognito as never } }, async () => 'x'),
      { code: 'FST_COGNITO_INVALID_OPTION', message }, name)
  }
})

t.test('a groups or scopes key that is present but empty fails when the route is registered', async (t) => {
  const app = await buildApp(t)
  const unset: string | undefined = process.env.FASTIFY_COGNITO_JWT_TEST_UNSET_GROUP
  const cases: Array<[string, object, RegExp]> = [
    ['groups from an unset variable', { groups: unset }, /^Invalid option config\.cognito\.groups: /],
    ['groups undefined beside a match', { groups: undefined, match: 'all' }, /^Invalid option config\.cognito\.groups: /],
    ['groups an empty string', { groups: '' }, /^Invalid option config\.cognito\.groups: /],
    ['scopes undefined', { scopes: undefined }, /^Invalid option config\.cognito\.scopes: /],
    ['scopes an empty string', { scopes: '' }, /^Invalid option config\.cognito\.scopes: /],
    ['scopes undefined beside valid groups', { groups: 'admin', scopes: undefined }, /^Invalid option config\.cognito\.scopes: /],
    ['groups undefined on an optional route', { optional: true, groups: undefined }, /^Invalid option config\.cognito\.groups: /]
  ]
  for (const [name, cognito, message] of cases) {
    t.throws(() => app.get(`/${name.replace(/ /g, '-')}`, { config: { cognito } }, whoAmI), { code: 'FST_COGNITO_INVALID_OPTION', message }, name)
  }
})

t.test('misspelt requirement options fail when the hook is created', async (t) => {
  const app = await buildApp(t)
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['groups with mach', () => app.requireGroups(['admin', 'billing'], { mach: 'all' } as never), /^Invalid option groups options\.mach: is not an option; did you mean match\?$/],
    ['scopes with an extra key', () => app.requireScopes('orders/read', { match: 'all', optional: true } as never), /^Invalid option scopes options\.optional: is not an option; expected one of match$/],
    ['groups with a list of options', () => app.requireGroups('admin', ['all'] as never), /^Invalid option groups options: must be an object/]
  ]
  for (const [name, make, message] of cases) {
    t.throws(make, { code: 'FST_COGNITO_INVALID_OPTION', statusCode: 500, message }, name)
  }
  t.doesNotThrow(() => app.requireGroups('admin', {}), 'no options set is "any"')
  t.doesNotThrow(() => app.requireScopes('orders/read', { match: undefined }), 'match left undefined is "any"')
})

t.test('the scope of a verified token is split once, whatever the number of requests that send it', async (t) => {
  const app = await buildApp(t)
  app.get('/read', { onRequest: [app.authenticate, app.requireScopes('orders/read')] }, whoAmI)
  // Claims the application puts on the request itself are not the plugin's frozen ones: read each time.
  app.get('/own', {
    onRequest: [async (request) => { request.cognitoClaims = { ...request.headers.claims === undefined ? {} : JSON.parse(String(request.headers.claims)) } }, app.requireScopes('orders/read')]
  }, async () => 'own')
  const token = issuer.accessToken({ sub: 'reader', scope: 'openid orders/read' })
  const split = String.prototype.split
  let scopeSplits = 0
  String.prototype.split = function (this: string, ...args: Parameters<typeof split>) {
    if (String(args[0]) === ' ' && String(this) === 'openid orders/read') scopeSplits++
    return split.apply(this, args)
  } as typeof split
  t.teardown(() => { String.prototype.split = split })
  for (let i = 0; i < 10; i++) accepted(t, await app.inject({ url: '/read', headers: bearer(token) }), 'reader')
  // Once per verified claims object: the token cache admits a token on its second verification.
  t.equal(scopeSplits, 2, 'split twice for ten requests')

  const own = (scope: string): Promise<LightMyRequestResponse> => app.inject({ url: '/own', headers: { claims: JSON.stringify({ token_use: 'access', scope }) } })
  t.equal((await own('orders/read')).statusCode, 200)
  t.equal((await own('orders/write')).statusCode, 403, 'claims that are not frozen are read again')
})
