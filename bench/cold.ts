/**
 * The cold-start workload: what a fresh process (an AWS Lambda cold start) pays before its first
 * answer, the plugin beside aws-jwt-verify. The package is built first (`npm run build`) and
 * required by its name, as users get it. Each program runs in `samples` fresh processes, the two
 * sides taking turns; a figure is the wall time from spawn to exit, best and median.
 *   import   `require()` of the library alone
 *   first    Fastify and the library imported, the keys given up front, one authenticated
 *            request answered (inject): the whole life of a cold Lambda's first invocation
 *   deps     the import of each dependency alone, above bare Node
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { LocalIssuer } from '../testing'
import { CLIENT_ID, USER_POOL_ID } from './config'
import { median } from './report'

const ROOT = join(__dirname, '..')
/** The package by its name: its own `exports` resolve it, from the repository's root. */
const PACKAGE = 'fastify-cognito-jwt'
const DEPENDENCIES = ['fastify', 'fast-jwt', 'get-jwks', 'undici', '@fastify/error', 'fastify-plugin'] as const

/** Ratios the plugin must stay within, against aws-jwt-verify. */
export const COLD_TARGETS = { import: 1.4, first: 1.1 } as const

/** The first request, with the plugin: keys given up front, nothing fetched. */
const PLUGIN_FIRST = `
const { token, jwks, userPoolId, clientId } = JSON.parse(process.env.BENCH_COLD)
const Fastify = require('fastify')
const cognitoAuth = require('${PACKAGE}')
async function main () {
  const app = Fastify()
  await app.register(cognitoAuth, { userPoolId, clientId, jwks, jwksUri: false })
  app.get('/', { onRequest: app.authenticate }, async (request) => ({ sub: request.cognitoClaims.sub }))
  const response = await app.inject({ url: '/', headers: { authorization: 'Bearer ' + token } })
  if (response.statusCode !== 200) throw new Error('refused: ' + response.body)
}
main()
`

/** The same program on aws-jwt-verify, as its README's Fastify example has it, with the keys cached up front. */
const AWS_FIRST = `
const { token, jwks, userPoolId, clientId } = JSON.parse(process.env.BENCH_COLD)
const Fastify = require('fastify')
const { CognitoJwtVerifier } = require('aws-jwt-verify')
const verifier = CognitoJwtVerifier.create({ userPoolId, clientId, tokenUse: 'id' })
verifier.cacheJwks(jwks)
async function main () {
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    try {
      request.claims = await verifier.verify((request.headers.authorization || '').replace(/^Bearer /, ''))
    } catch {
      return reply.code(401).send({ message: 'Unauthorized' })
    }
  })
  app.get('/', async (request) => ({ sub: request.claims.sub }))
  const response = await app.inject({ url: '/', headers: { authorization: 'Bearer ' + token } })
  if (response.statusCode !== 200) throw new Error('refused: ' + response.body)
}
main()
`

interface Program {
  name: string
  script: string
}

export interface ColdRow {
  name: string
  bestMs: number
  medianMs: number
}

export interface ColdResult {
  rows: ColdRow[]
  importRatio: number
  firstRatio: number
}

/** Wall time of one fresh process running `script`, in ms; throws if it fails. */
function runOnce ({ name, script }: Program, env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint()
  // An unhandled rejection ends the process with a non-zero status: a refused request fails the run.
  const { status, stderr } = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env, encoding: 'utf8' })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (status !== 0) throw new Error(`cold start "${name}" failed: ${stderr}`)
  return ms
}

/** Each program `samples` times, taking turns, so that a slow spell of the machine hits all of them. */
function measurePrograms (programs: readonly Program[], samples: number, env: NodeJS.ProcessEnv): ColdRow[] {
  const times = programs.map(() => [] as number[])
  for (let sample = 0; sample < samples; sample++) {
    programs.forEach((program, i) => { times[i].push(runOnce(program, env)) })
  }
  return programs.map((program, i) => ({ name: program.name, bestMs: Math.min(...times[i]), medianMs: median(times[i]) }))
}

export function runColdStart (issuer: LocalIssuer, samples: number, log: (message: string) => void): ColdResult {
  log('cold start: building the package (npm run build)')
  execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' })
  const env = {
    ...process.env,
    BENCH_COLD: JSON.stringify({ token: issuer.idToken(), jwks: issuer.jwks, userPoolId: USER_POOL_ID, clientId: CLIENT_ID })
  }
  const programs: Program[] = [
    { name: 'bare node', script: '' },
    { name: `import ${PACKAGE}`, script: `require('${PACKAGE}')` },
    { name: 'import aws-jwt-verify', script: "require('aws-jwt-verify')" },
    { name: `first request ${PACKAGE}`, script: PLUGIN_FIRST },
    { name: 'first request aws-jwt-verify', script: AWS_FIRST },
    ...DEPENDENCIES.map((dependency) => ({ name: `import ${dependency}`, script: `require('${dependency}')` }))
  ]
  log(`cold start: ${programs.length} programs, ${samples} fresh processes each`)
  const rows = measurePrograms(programs, samples, env)
  const best = (name: string): number => rows.find((row) => row.name === name)?.bestMs ?? NaN
  return {
    rows,
    importRatio: best(`import ${PACKAGE}`) / best('import aws-jwt-verify'),
    firstRatio: best(`first request ${PACKAGE}`) / best('first request aws-jwt-verify')
  }
}

export function formatCold ({ rows, importRatio, firstRatio }: ColdResult): string {
  const bare = rows[0].bestMs
  const lines = [['program', 'best ms', 'median ms', 'best - bare node ms']]
  for (const row of rows) lines.push([row.name, row.bestMs.toFixed(1), row.medianMs.toFixed(1), row === rows[0] ? '-' : (row.bestMs - bare).toFixed(1)])
  const widths = lines[0].map((_, column) => Math.max(...lines.map((line) => line[column].length)))
  const table = lines.map((line) => line.map((cell, column) => column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join('  ')).join('\n')
  const verdict = (ratio: number, target: number): string => `${ratio.toFixed(2)} (target <= ${target}: ${ratio <= target ? 'met' : 'NOT met'})`
  return `${table}\n` +
    `import, plugin / aws-jwt-verify (best): ${verdict(importRatio, COLD_TARGETS.import)}\n` +
    `first request, plugin / aws-jwt-verify (best): ${verdict(firstRatio, COLD_TARGETS.first)}`
}
