/** The route without authentication: the ceiling every other variant is measured against. */
import type { SetupVariant } from './common'

export const setupNone: SetupVariant = async () => ({ subject: () => 'anonymous' })
