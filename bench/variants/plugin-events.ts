/**
 * The plugin as in `plugin`, with one subscriber on each of its diagnostics channels: beside
 * `plugin`, what listening costs, and so the most that an application that does not listen can pay.
 */
import { subscribe } from 'node:diagnostics_channel'
import { channels } from '../../index'
import type { SetupVariant } from './common'
import { setupPlugin } from './plugin'

/** Messages heard, so that the subscribers do something with each one. */
let heard = 0

export const setupPluginEvents: SetupVariant = async (app, spec) => {
  for (const name of Object.values(channels)) subscribe(name, () => { heard++ })
  app.addHook('onClose', async () => { app.log.debug({ heard }, 'bench: events heard') })
  return await setupPlugin(app, spec)
}
