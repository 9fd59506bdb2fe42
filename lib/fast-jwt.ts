/**
 * fast-jwt, loaded when the first key is prepared instead of at import: its entry point loads its
 * signer and asn1.js as well, the better part of the plugin's import time, which an application
 * pays on every cold start (AWS Lambda) before it has seen a token. Only types are imported
 * statically; the rest of the plugin imports fast-jwt from here.
 */
import type * as FastJwt from 'fast-jwt'

let fastJwt: typeof FastJwt | undefined

function load (): typeof FastJwt {
  fastJwt ??= require('fast-jwt') as typeof FastJwt
  return fastJwt
}

export const createVerifier = ((options: Parameters<typeof FastJwt.createVerifier>[0]) => load().createVerifier(options)) as typeof FastJwt.createVerifier

/** fast-jwt's error codes. Read when a verifier has thrown, so fast-jwt is loaded by then anyway. */
export const TokenError = {
  get codes (): typeof FastJwt.TokenError.codes {
    return load().TokenError.codes
  }
}
export type TokenError = FastJwt.TokenError
