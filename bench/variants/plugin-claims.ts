/**
 * The plugin as in `plugin`, with a schema of five claims for its ID tokens: beside `plugin` on
 * distinct tokens (workload b), what the schema check of each new token costs.
 */
import type { SetupVariant } from './common'
import { setupPluginWith } from './plugin'

/** Five claims every bench token carries, with rules of the kinds applications write. */
const ID_CLAIMS = {
  type: 'object',
  required: ['sub', 'email', 'email_verified', 'cognito:username', 'event_id'],
  properties: {
    sub: { type: 'string', format: 'uuid' },
    email: { type: 'string', format: 'email' },
    email_verified: { type: 'boolean' },
    'cognito:username': { type: 'string', minLength: 1 },
    event_id: { type: 'string', format: 'uuid' }
  }
}

export const setupPluginClaims: SetupVariant = setupPluginWith({ claims: { id: ID_CLAIMS } })
