/**
 * The example's own users, kept in SQLite (better-sqlite3). Cognito knows who signed in; the
 * application keeps its own row per user, keyed by the token's `sub` (the user's immutable id),
 * and creates it on the user's first request.
 */
import Database from 'better-sqlite3'
import type { CognitoClaims } from '../index'

/** A user of this application, as `request.cognitoUser` holds it. */
export interface User {
  id: number
  /** The Cognito user's `sub`. */
  sub: string
  /** From the ID token; access tokens carry no email. */
  email: string | null
  createdAt: string
}

/**
 * Every better-sqlite3 object made here, kept reachable until the process ends. On Node.js 24.19
 * and later, better-sqlite3 12 (the last major that runs on Node.js 20) aborts the process when
 * one of its objects is collected by a garbage collection that runs outside JavaScript, such as an
 * idle one; an object that is never garbage is never collected.
 */
const neverCollected: object[] = []

export class UserStore {
  private readonly db: Database.Database
  private readonly upsert: Database.Statement<[string, string | null], User>
  private readonly countUsers: Database.Statement<[], { n: number }>

  /** `:memory:` (the default) keeps users until the process ends; a file path keeps them on disk. */
  constructor (filename = ':memory:') {
    this.db = new Database(filename)
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS users (
        id         INTEGER PRIMARY KEY,
        sub        TEXT NOT NULL UNIQUE,
        email      TEXT,
        created_at TEXT NOT NULL DEFAULT (datetime('now'))
      )`)
    // Get-or-create in ONE statement, so it is atomic: when the first requests of a new user
    // arrive together (even in several processes sharing the database file), one of them
    // inserts the row and the others update it, and all get the same row back. A separate
    // SELECT, then INSERT could create two users, or fail on the UNIQUE constraint.
    // The update keeps the email current; an access token (no email) leaves it unchanged.
    this.upsert = this.db.prepare(`
      INSERT INTO users (sub, email) VALUES (?, ?)
      ON CONFLICT (sub) DO UPDATE SET email = coalesce(excluded.email, users.email)
      RETURNING id, sub, email, created_at AS createdAt`)
    this.countUsers = this.db.prepare('SELECT count(*) AS n FROM users')
    neverCollected.push(this.db, this.upsert, this.countUsers)
  }

  /** The user the verified claims belong to, created on first sight. */
  findOrCreate (claims: CognitoClaims): User {
    // `email` is not checked by the plugin (a trigger may write any JSON value): a string or nothing.
    const email = claims.token_use === 'id' && typeof claims.email === 'string' ? claims.email : null
    return this.upsert.get(claims.sub, email) as User
  }

  count (): number {
    return (this.countUsers.get() as { n: number }).n
  }

  close (): void {
    this.db.close()
  }
}
