/** Every variant the benchmark compares, by name. */
import type { Variant } from '../config'
import { setupAwsJwtVerify } from './aws-jwt-verify'
import type { SetupVariant } from './common'
import { setupFastifyJwt } from './fastify-jwt'
import { setupFastJwtCache } from './fast-jwt-cache'
import { setupFastifyJwtJwks } from './fastify-jwt-jwks'
import { setupFloor } from './floor'
import { setupNone } from './none'
import { setupPlugin } from './plugin'
import { setupPluginClaims } from './plugin-claims'
import { setupPluginEvents } from './plugin-events'

export const variants: Record<Variant, SetupVariant> = {
  none: setupNone,
  floor: setupFloor,
  plugin: setupPlugin,
  'fast-jwt cache': setupFastJwtCache,
  'aws-jwt-verify': setupAwsJwtVerify,
  '@fastify/jwt+get-jwks': setupFastifyJwt,
  'fastify-jwt-jwks': setupFastifyJwtJwks,
  'plugin+events': setupPluginEvents,
  'plugin+claims': setupPluginClaims
}
