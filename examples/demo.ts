/**
 * The example API, runnable without an AWS account:
 *   npm run demo              a local user pool; prints tokens and curl commands, serves until Ctrl-C
 *   npm run demo -- --once    sends one request per case, prints expected and actual status,
 *                             exits 0 only when all match (always with the local user pool)
 * Environment:
 *   PORT=3000                 where the API listens, on 127.0.0.1 (--once picks a free port)
 *   DEMO_DB=users.db          keep the users in this SQLite file instead of in memory
 *   COGNITO_USER_POOL, COGNITO_AUDIENCE (and COGNITO_AWS_REGION)
 *                             serve against a real user pool instead; send its tokens
 *                             (see cognitoOptionsFromEnv in demo-runner.ts for emulators)
 */
import { runDemo } from './demo-runner'

runDemo({ args: process.argv.slice(2), env: process.env, print: (line) => console.log(line) }).then(
  (exitCode) => { process.exitCode = exitCode },
  (err: Error) => {
    console.error(err.message)
    process.exitCode = 1
  }
)
