/**
 * Unknown option keys fail `register`, at every level: JavaScript callers have no compiler to
 * catch `isrevoked` or `jwksCache: { tll: 5 }`, and a misspelt key would otherwise turn a feature
 * off without a word.
 */
import { InvalidOptionError } from './errors'

/** What Fastify itself passes to every plugin with its options (`app.register(plugin, { prefix })`). */
export const REGISTER_KEYS: readonly string[] = ['prefix', 'logLevel', 'logSerializers']

/** Throws FST_COGNITO_INVALID_OPTION naming the first unknown key of `record` and the known key closest to it. */
export function refuseUnknownKeys (record: object, known: readonly string[], path: string): void {
  for (const key of Object.keys(record)) {
    if (known.includes(key)) continue
    const name = path === '' ? key : `${path}.${key}`
    const closest = closestKey(key, known)
    throw new InvalidOptionError(name, closest === undefined
      ? `is not an option; expected one of ${known.join(', ')}`
      : `is not an option; did you mean ${closest}?`)
  }
}

/** The known key a typo most likely meant: same letters in another case, or at most a third of them off. */
function closestKey (key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined
}

/** Levenshtein distance, with one row of memory. */
function editDistance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]
      row[j] = Math.min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]
}
