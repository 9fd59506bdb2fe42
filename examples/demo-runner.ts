/**
 * The demo's three ways to run (examples/demo.ts only calls `runDemo`):
 *   serve with a local user pool   prints tokens and curl commands, serves until Ctrl-C
 *   --once                         runs the checks of ./checks.ts against the API and exits
 *   serve against a real user pool when COGNITO_USER_POOL and COGNITO_AUDIENCE are set
 */
import type { CognitoAlbOptions, CognitoSinglePoolOptions } from '../index'
import { AlbIssuer, LocalIssuer } from '../testing'
import { buildApp } from './app'
import { demoChecks, demoTokens, formatResult, outcome, runCheck, summarize, type Check } from './checks'
import { UserStore } from './users'

type Env = Record<string, string | undefined>

export interface DemoIo {
  args: readonly string[]
  env: Env
  print: (line: string) => void
}

/**
 * A real user pool from the environment, or undefined for the local demo:
 *   COGNITO_USER_POOL   the pool id, e.g. eu-central-1_xYzaq
 *   COGNITO_AWS_REGION  optional; checked against the pool id's prefix
 *   COGNITO_AUDIENCE    the app client id (several: comma-separated)
 *   COGNITO_ISSUER, COGNITO_JWKS_URI  optional, for an emulator such as cognito-local
 */
export function cognitoOptionsFromEnv (env: Env): CognitoSinglePoolOptions | undefined {
  const userPoolId = env.COGNITO_USER_POOL || undefined
  const audience = env.COGNITO_AUDIENCE || undefined
  if (userPoolId === undefined && audience === undefined) return undefined
  if (userPoolId === undefined || audience === undefined) {
    throw new Error('Set both COGNITO_USER_POOL and COGNITO_AUDIENCE to use a real user pool (or neither, for the local demo)')
  }
  return {
    userPoolId,
    region: env.COGNITO_AWS_REGION || undefined,
    clientId: audience.split(',').map((id) => id.trim()),
    issuer: env.COGNITO_ISSUER || undefined,
    jwksUri: env.COGNITO_JWKS_URI || undefined
  }
}

export function portFromEnv (env: Env): number {
  const port = Number(env.PORT || '3000')
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number from 0 to 65535, not "${env.PORT}"`)
  return port
}

/** Says plainly what went wrong when the port is taken; other errors pass unchanged. */
export function describeListenError (err: NodeJS.ErrnoException, port: number): Error {
  if (err.code !== 'EADDRINUSE') return err
  return new Error(`Port ${port} on 127.0.0.1 is already in use: stop what uses it, or choose another port, e.g. PORT=3001 npm run demo`)
}

interface RunningApi {
  url: string
  close: () => Promise<void>
}

/** Builds the example app and listens on 127.0.0.1; `DEMO_DB` names a database file (default: in memory). */
async function startApi (cognito: CognitoSinglePoolOptions, env: Env, port: number, alb?: CognitoAlbOptions): Promise<RunningApi> {
  const users = new UserStore(env.DEMO_DB || ':memory:')
  // Warnings only: a JWKS endpoint that cannot be reached is logged; refused requests are not.
  const app = buildApp({ cognito, users, alb, logger: { level: 'warn' } })
  const close = async (): Promise<void> => {
    await app.close()
    users.close()
  }
  try {
    const url = await app.listen({ host: '127.0.0.1', port })
    return { url, close }
  } catch (err) {
    await close()
    throw describeListenError(err as NodeJS.ErrnoException, port)
  }
}

/** Resolves on the first SIGINT (Ctrl-C) or SIGTERM. */
function untilStopped (): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve(signal)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

async function serveUntilStopped (api: RunningApi, print: DemoIo['print']): Promise<void> {
  const signal = await untilStopped()
  print(`${signal}: stopping`)
  await api.close()
}

/** A request the local demo suggests, with the shell variable holding its token. */
interface SuggestedRequest {
  /** GET unless said. */
  method?: 'POST'
  path: string
  token?: 'ID_TOKEN' | 'ADMIN_TOKEN' | 'ACCESS_TOKEN'
  expected: Check['expected']
}

const suggestedRequests: SuggestedRequest[] = [
  { path: '/', expected: { status: 200 } },
  { path: '/me', expected: { status: 401, code: 'FST_COGNITO_NO_TOKEN' } },
  { path: '/me', token: 'ID_TOKEN', expected: { status: 200 } },
  { path: '/admin', token: 'ID_TOKEN', expected: { status: 403, code: 'FST_COGNITO_FORBIDDEN' } },
  { path: '/admin', token: 'ADMIN_TOKEN', expected: { status: 200 } },
  { path: '/orders', token: 'ACCESS_TOKEN', expected: { status: 200 } },
  { path: '/orders', token: 'ID_TOKEN', expected: { status: 403, code: 'FST_COGNITO_FORBIDDEN' } },
  // Last: signing Bob out revokes every token of his sign-in.
  { method: 'POST', path: '/logout', token: 'ADMIN_TOKEN', expected: { status: 204 } },
  { path: '/admin', token: 'ADMIN_TOKEN', expected: { status: 401, code: 'FST_COGNITO_TOKEN_REVOKED' } }
]

/** One `curl` command per suggested request, each ending in a shell comment with the answer to expect. */
export function curlLines (url: string): string[] {
  const commands = suggestedRequests.map(({ method, path, token }) => {
    const options = `${method === undefined ? '' : `-X ${method} `}${token === undefined ? '' : `-H "Authorization: Bearer $${token}" `}`
    return `curl -i ${options}${url}${path}`
  })
  const width = Math.max(...commands.map((command) => command.length))
  return commands.map((command, i) => {
    const { status, code } = suggestedRequests[i].expected
    return `${command.padEnd(width)}  # expect ${outcome(status, code)}`
  })
}

async function serveLocal ({ env, print }: DemoIo): Promise<number> {
  const issuer = new LocalIssuer()
  await issuer.listen()
  const alb = new AlbIssuer({ pool: issuer })
  await alb.listen()
  try {
    const api = await startApi(issuer.pluginOptions(), env, portFromEnv(env), alb.albOptions())
    const tokens = demoTokens(issuer)
    print(`Local user pool ${issuer.userPoolId}, keys at ${issuer.jwksUri}`)
    print(`API listening on ${api.url} (Ctrl-C stops it)`)
    print('')
    print('Tokens valid for an hour: Alice is in group users, Bob also in admin; Alice\'s access token has scope orders/read.')
    print('Paste these lines into a shell:')
    print(`ID_TOKEN=${tokens.id}`)
    print(`ADMIN_TOKEN=${tokens.admin}`)
    print(`ACCESS_TOKEN=${tokens.access}`)
    for (const line of curlLines(api.url)) print(line)
    print(`Behind a local load balancer (keys at ${alb.keysUri}): ${api.url}/alb/me takes its x-amzn-oidc-* headers; npm run demo -- --once sends them.`)
    await serveUntilStopped(api, print)
  } finally {
    await alb.close()
    await issuer.close()
  }
  return 0
}

async function serveUserPool (cognito: CognitoSinglePoolOptions, { env, print }: DemoIo): Promise<number> {
  const api = await startApi(cognito, env, portFromEnv(env))
  print(`API listening on ${api.url} for user pool ${cognito.userPoolId} (Ctrl-C stops it)`)
  print(`Send a token the pool issued: curl -i -H "Authorization: Bearer $TOKEN" ${api.url}/me`)
  await serveUntilStopped(api, print)
  return 0
}

async function runOnce ({ env, print }: DemoIo): Promise<number> {
  const issuer = new LocalIssuer()
  await issuer.listen()
  // A local load balancer in front of /alb: its key served on 127.0.0.1.
  const alb = new AlbIssuer({ pool: issuer })
  await alb.listen()
  try {
    const api = await startApi(issuer.pluginOptions(), env, 0, alb.albOptions())
    try {
      const results = []
      for (const check of demoChecks(issuer, alb)) {
        const result = await runCheck(api.url, check)
        print(formatResult(result))
        results.push(result)
      }
      const { line, exitCode } = summarize(results)
      print(line)
      return exitCode
    } finally {
      await api.close()
    }
  } finally {
    await alb.close()
    await issuer.close()
  }
}

/** Runs the demo; resolves with the process exit code. */
export async function runDemo (io: DemoIo): Promise<number> {
  if (io.args.includes('--once')) return runOnce(io)
  const pool = cognitoOptionsFromEnv(io.env)
  return pool === undefined ? serveLocal(io) : serveUserPool(pool, io)
}
