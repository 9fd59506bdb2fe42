/**
 * Runs the cognito-local emulator as a child process for end-to-end tests, and drives it through
 * the AWS SDK. The emulator listens on a fixed loopback port (its issuer contains the port, so a
 * random one would have to be known before start anyway) and keeps its database under `.cognito`
 * in its working directory: each run gets a fresh temporary one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateGroupCommand,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  InitiateAuthCommand
} from '@aws-sdk/client-cognito-identity-provider'

// On Node.js 20 the AWS SDK warns that its releases from 2027 on will need Node.js 22. The tests
// run on 20 on purpose, and the warning is about the SDK, not the plugin: keep it out of the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

/** Chosen to be unlikely to clash; the emulator's own default (9229) is Node's inspector port. */
export const COGNITO_LOCAL_PORT = 47119
const HOST = '127.0.0.1'
const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000
const OUTPUT_TAIL_CHARS = 4_000

export interface UserPool {
  userPoolId: string
  /** What the emulator puts in `iss`: `http://127.0.0.1:<port>/<poolId>`. */
  issuer: string
  jwksUri: string
}

export interface SignedIn {
  idToken: string
  accessToken: string
  refreshToken: string
}

export interface CognitoLocal {
  readonly endpoint: string
  readonly sdk: CognitoIdentityProviderClient
  createUserPool: (name: string) => Promise<UserPool>
  /** An app client that allows USER_PASSWORD_AUTH; returns its id. */
  createAppClient: (userPoolId: string, name: string) => Promise<string>
  /** A confirmed user with a permanent password; returns its `sub`. */
  createUser: (userPoolId: string, username: string, password: string, email: string) => Promise<string>
  createGroup: (userPoolId: string, group: string) => Promise<void>
  addUserToGroup: (userPoolId: string, username: string, group: string) => Promise<void>
  signIn: (clientId: string, username: string, password: string) => Promise<SignedIn>
  /** Stops the emulator and removes its directory; safe to call more than once. */
  stop: () => Promise<void>
}

async function assertPortFree (port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(err.code === 'EADDRINUSE'
        ? `cognito-local needs ${HOST}:${port}, which is already in use: stop whatever listens there`
        : `cannot probe ${HOST}:${port}: ${err.message}`))
    })
    probe.listen(port, HOST, () => probe.close(() => resolve()))
  })
}

function startScript (): string {
  return join(dirname(require.resolve('cognito-local/package.json')), 'lib', 'bin', 'start.js')
}

function exitOf (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Resolves once the emulator answers its health check; rejects if it exits or never answers. */
async function waitUntilAnswering (child: ChildProcess, endpoint: string, output: () => string): Promise<void> {
  let exited = false
  child.once('exit', () => { exited = true })
  const deadline = Date.now() + START_TIMEOUT_MS
  while (true) {
    if (exited) throw new Error(`cognito-local exited during start (code ${String(child.exitCode)}):\n${output()}`)
    try {
      const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) })
      if (response.ok) return
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`cognito-local did not answer within ${START_TIMEOUT_MS} ms:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export async function startCognitoLocal (port: number = COGNITO_LOCAL_PORT): Promise<CognitoLocal> {
  await assertPortFree(port)
  const directory = await mkdtemp(join(tmpdir(), 'cognito-local-'))
  // Plain usernames (`alice`), as a pool without username attributes has; the emulator's own
  // default makes every pool require email addresses as usernames.
  await mkdir(join(directory, '.cognito'))
  await writeFile(join(directory, '.cognito', 'config.json'), JSON.stringify({ UserPoolDefaults: { UsernameAttributes: [] } }))

  const child = spawn(process.execPath, [startScript()], {
    cwd: directory,
    // A clean environment: the test runner's NODE_OPTIONS (loaders, coverage) must not reach it.
    env: {
      PATH: process.env.PATH,
      HOME: directory,
      PORT: String(port),
      HOST,
      AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: '1'
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const keep = (chunk: Buffer): void => { output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  // Last resort when the test process ends without its teardown running.
  const killOnExit = (): void => { child.kill('SIGKILL') }
  process.once('exit', killOnExit)

  const endpoint = `http://${HOST}:${port}`
  const sdk = new CognitoIdentityProviderClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' }
  })

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      sdk.destroy()
      const exited = exitOf(child)
      child.kill('SIGTERM')
      const forced = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      await exited
      clearTimeout(forced)
      process.removeListener('exit', killOnExit)
      await rm(directory, { recursive: true, force: true })
    })()
    return stopped
  }

  try {
    await waitUntilAnswering(child, endpoint, () => output)
  } catch (err) {
    await stop()
    throw err
  }

  return {
    endpoint,
    sdk,
    stop,
    async createUserPool (name) {
      const { UserPool: pool } = await sdk.send(new CreateUserPoolCommand({ PoolName: name }))
      const userPoolId = required(pool?.Id, 'user pool id')
      const issuer = `${endpoint}/${userPoolId}`
      return { userPoolId, issuer, jwksUri: `${issuer}/.well-known/jwks.json` }
    },
    async createAppClient (userPoolId, name) {
      const { UserPoolClient: client } = await sdk.send(new CreateUserPoolClientCommand({
        UserPoolId: userPoolId,
        ClientName: name,
        ExplicitAuthFlows: ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']
      }))
      return required(client?.ClientId, 'app client id')
    },
    async createUser (userPoolId, username, password, email) {
      const { User: user } = await sdk.send(new AdminCreateUserCommand({
        UserPoolId: userPoolId,
        Username: username,
        UserAttributes: [{ Name: 'email', Value: email }, { Name: 'email_verified', Value: 'true' }],
        MessageAction: 'SUPPRESS'
      }))
      await sdk.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: username, Password: password, Permanent: true }))
      return required(user?.Attributes?.find((attribute) => attribute.Name === 'sub')?.Value, 'sub')
    },
    async createGroup (userPoolId, group) {
      await sdk.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName: group }))
    },
    async addUserToGroup (userPoolId, username, group) {
      await sdk.send(new AdminAddUserToGroupCommand({ UserPoolId: userPoolId, Username: username, GroupName: group }))
    },
    async signIn (clientId, username, password) {
      const { AuthenticationResult: result } = await sdk.send(new InitiateAuthCommand({
        ClientId: clientId,
        AuthFlow: 'USER_PASSWORD_AUTH',
        AuthParameters: { USERNAME: username, PASSWORD: password }
      }))
      return {
        idToken: required(result?.IdToken, 'ID token'),
        accessToken: required(result?.AccessToken, 'access token'),
        refreshToken: required(result?.RefreshToken, 'refresh token')
      }
    }
  }
}

function required<T> (value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`cognito-local returned no ${what}`)
  return value
}

/** A token's payload, read without verifying it: only to learn what the emulator issued. */
export function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
}

/** A token's header, read without verifying it. */
export function headerOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
}
