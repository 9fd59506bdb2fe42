/**
 * The application's own claims rules: a JSON Schema per kind of token (`claims: { id, access, alb }`),
 * compiled at register (or when a resolver first answers a pool with it) and checked on verified
 * claims after the plugin's own rules (lib/claims.ts; lib/alb/claims.ts for the load balancer's
 * user claims), once per token.
 *
 * The validator is ajv 8, the engine Fastify compiles route schemas with (through
 * @fastify/ajv-compiler), with ajv-formats as Fastify adds it: the same version range, so a
 * package manager installs one copy of each. Loaded by the first schema compiled: an application
 * without `claims` never loads it.
 *
 * A schema can only refuse more tokens, never fewer: it sees claims the plugin has already
 * accepted, and it cannot change them (no type coercion, no defaults, no removed properties, no
 * asynchronous schemas, whose promise would read as a pass).
 */
import type { default as AjvClass, ErrorObject, Options as AjvOptions, ValidateFunction } from 'ajv'
import type { FormatsPlugin } from 'ajv-formats'
import { InvalidOptionError } from './errors'
import { refuseUnknownKeys } from './option-keys'
import type { TokenUse } from '../types'

/** Why a token's claims fail the schema of its kind, or undefined when they pass. The reason names no claim value. */
export type ClaimsCheck = (claims: Record<string, unknown>) => string | undefined

export interface ClaimSchemas {
  id?: ClaimsCheck
  access?: ClaimsCheck
  /** The load balancer's user claims (`x-amzn-oidc-data`); only with the `alb` option. */
  alb?: ClaimsCheck
  /** The schemas as JSON: part of what a token was accepted under (a resolver answer that changes them re-checks). */
  readonly fingerprint: string
}

const KINDS = ['id', 'access', 'alb'] as const

/** Compiled schemas kept, by their JSON: a resolver answering the same schema again does not compile it again. */
const MAX_COMPILED = 256

const AJV_OPTIONS: AjvOptions = {
  // Claims are checked, never changed: every mutating option is off (they are off by default;
  // Fastify turns some on for request bodies, which is why they are spelt out here).
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  // The first failure is the reason; `verbose` would put the claim's value on the error.
  allErrors: false,
  verbose: false,
  // A schema is the application's, compiled once: no shared registry of schemas by `$id`.
  addUsedSchema: false,
  // Unknown keywords and formats fail compilation (a misspelt rule must not check nothing); a
  // required claim need not be described, and the merely stylistic warnings are not printed.
  strict: true,
  strictRequired: false,
  strictTypes: false,
  strictTuples: false,
  logger: false
}

interface Compiled {
  validate: ValidateFunction
  check: ClaimsCheck
}

let ajv: AjvClass | undefined
const compiled = new Map<string, Compiled>()

function engine (): AjvClass {
  if (ajv === undefined) {
    const Ajv = require('ajv') as typeof AjvClass
    const addFormats = require('ajv-formats') as FormatsPlugin
    ajv = addFormats(new Ajv(AJV_OPTIONS))
  }
  return ajv
}

function fail (option: string, problem: string): never {
  throw new InvalidOptionError(option, problem)
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The schema's check, compiled once per distinct JSON; throws with the engine's message. */
function compile (json: string, option: string): ClaimsCheck {
  const known = compiled.get(json)
  if (known !== undefined) return known.check
  const schema = JSON.parse(json) as Record<string, unknown>
  if (schema.$async !== undefined) fail(option, 'must not be asynchronous ($async): the claims are checked synchronously')
  let validate: ValidateFunction
  try {
    validate = engine().compile(schema)
  } catch (err) {
    fail(option, `does not compile: ${(err as Error).message}`)
  }
  if (compiled.size >= MAX_COMPILED) {
    // Maps iterate in insertion order: the first is the oldest. The engine forgets it too.
    const [oldest, entry] = compiled.entries().next().value as [string, Compiled]
    compiled.delete(oldest)
    engine().removeSchema(entry.validate.schema)
  }
  const check = checkOf(validate)
  compiled.set(json, { validate, check })
  return check
}

/** The schema as JSON, the key of its compiled validator; refused if it is not JSON. */
function jsonOf (schema: unknown, option: string): string {
  if (!isRecord(schema)) fail(option, 'must be a JSON Schema object (e.g. { type: "object", properties: { ... } })')
  try {
    return JSON.stringify(schema)
  } catch {
    fail(option, 'must be a JSON Schema (plain JSON data)')
  }
}

/**
 * `claims` of a pool (top level, a `userPools` entry or a resolver's answer), checked and
 * compiled; null when absent. Throws FST_COGNITO_INVALID_OPTION naming the key at fault.
 */
export function parseClaimSchemas (value: unknown, option: string, tokenUse: TokenUse, alb = false): ClaimSchemas | null {
  if (value === undefined) return null
  if (!isRecord(value)) fail(option, 'must be an object: { id?: schema, access?: schema, alb?: schema }')
  refuseUnknownKeys(value, KINDS, option)
  const given = KINDS.filter((kind) => value[kind] !== undefined)
  if (given.length === 0) fail(option, 'must give a schema for id, access or alb tokens (or leave claims out)')
  const schemas: { id?: ClaimsCheck, access?: ClaimsCheck, alb?: ClaimsCheck } = {}
  const json: Record<string, string> = {}
  for (const kind of given) {
    // A schema for tokens the pool never accepts would check nothing, silently.
    if (kind === 'alb') {
      if (!alb) fail(`${option}.alb`, 'applies to the load balancer\'s user claims only: set the alb option, or remove claims.alb')
    } else if (tokenUse !== 'any' && tokenUse !== kind) {
      fail(`${option}.${kind}`, `applies to ${kind} tokens only, and this pool's tokenUse is "${tokenUse}"`)
    }
    json[kind] = jsonOf(value[kind], `${option}.${kind}`)
    schemas[kind] = compile(json[kind], `${option}.${kind}`)
  }
  return { ...schemas, fingerprint: JSON.stringify([json.id ?? null, json.access ?? null, json.alb ?? null]) }
}

/** Why the (verified) claims fail their kind's schema, or undefined when they pass or no schema applies. */
export function checkClaimSchemas (schemas: ClaimSchemas | null, claims: Record<string, unknown>): string | undefined {
  // token_use is "id" or "access" by now (lib/claims.ts).
  return schemas?.[claims.token_use as 'id' | 'access']?.(claims)
}

/** Why the load balancer's (verified) user claims fail the pool's `alb` schema, or undefined when they pass or there is none. */
export function checkAlbClaimSchema (schemas: ClaimSchemas | null, claims: Record<string, unknown>): string | undefined {
  return schemas?.alb?.(claims)
}

function checkOf (validate: ValidateFunction): ClaimsCheck {
  return (claims) => validate(claims) ? undefined : reasonOf((validate.errors as ErrorObject[])[0])
}

/**
 * The failure in words that name the claim and the rule, never a value: built from the error's
 * path, keyword and message, which ajv (without `verbose`) writes from the schema alone.
 */
function reasonOf (error: ErrorObject): string {
  const { instancePath, keyword, message } = error
  const claim = instancePath === '' ? claimOf(error) : decodePointer(instancePath.split('/')[1])
  const where = claim === undefined ? 'the claims fail' : `claim ${claim} fails`
  return `${where} the claims schema: ${message as string} (${keyword} at ${instancePath === '' ? '/' : instancePath})`
}

/** The claim a rule on the whole claims object names: a missing or unexpected claim, or a claim name refused. */
function claimOf ({ params, propertyName }: ErrorObject): string | undefined {
  const name: unknown = propertyName ?? params.missingProperty ?? params.additionalProperty
  return typeof name === 'string' ? name : undefined
}

/** A JSON Pointer segment (RFC 6901): `~1` is `/`, `~0` is `~`. */
function decodePointer (segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~')
}
