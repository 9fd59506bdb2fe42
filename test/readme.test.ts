/**
 * The README's code, checked so that it cannot drift from the plugin. Every ```ts/```js block
 * must follow an HTML comment, alone on the line before it (blank lines between are allowed):
 *
 *   <!-- snippet: program -->         a whole ES module: type-checked, then run with tsx in a
 *                                     child process, which must exit 0 on its own within 30 s,
 *                                     using only the loopback interface (the testing kit)
 *   <!-- snippet: module -->          a whole ES module, type-checked only (e.g. a real user
 *                                     pool, whose keys a run would fetch from AWS)
 *   <!-- snippet: commonjs -->        a whole CommonJS module, type-checked only
 *   <!-- snippet: fragment a b -->    statements type-checked after the contexts a, b, ...
 *                                     (`contexts` below), which declare what they use
 *
 * Types come from the sources: `fastify-cognito-jwt` is mapped to index.ts and
 * `fastify-cognito-jwt/testing` to testing.ts, checked with `strict` and
 * `exactOptionalPropertyTypes`, as the strictest application would. A block that declares a user
 * type (`declare module`) is checked in a program of its own, as the declaration holds for a
 * whole program.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import ts from 'typescript'

const root = resolve(__dirname, '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')

/** What a fragment may name, by context. */
const contexts: Record<string, string> = {
  app: `import Fastify, { type RouteHandlerMethod } from 'fastify'
import cognitoAuth from 'fastify-cognito-jwt'
const app = Fastify()
const userPoolId = 'eu-central-1_xYzaq'
const clientId = '1example23456789clientid'
declare const handler: RouteHandlerMethod`,
  orders: `declare function listOrders (user: unknown): Promise<unknown[]>
declare function personalFeed (user: unknown): Promise<unknown[]>
declare function publicFeed (): Promise<unknown[]>`,
  db: `declare const pool: { query: (sql: string, values: unknown[]) => Promise<{ rows: Array<{ id: number, sub: string, email: string | null }> }> }`,
  redis: 'declare const redis: { exists: (key: string) => Promise<number> }',
  swagger: "import swagger from '@fastify/swagger'",
  websocket: "import websocket from '@fastify/websocket'"
}

type Kind = 'program' | 'module' | 'commonjs' | 'fragment'

interface Snippet {
  /** The README line of the block's first line of code. */
  line: number
  kind: Kind
  source: string
  /** Lines put before the block's own, for fragments. */
  prelude: string
  /** The heading the block is under. */
  section: string
}

const MARKER = /^<!-- snippet: (program|module|commonjs|fragment((?: [a-z]+)+)) -->$/

function extract (text: string): { snippets: Snippet[], unmarked: number[], unknownContexts: string[] } {
  const lines = text.split('\n')
  const snippets: Snippet[] = []
  const unmarked: number[] = []
  const unknownContexts: string[] = []
  let section = ''
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith('#')) section = lines[i].replace(/^#+ /, '')
    const fence = /^```(\w*)\s*$/.exec(lines[i])
    if (fence === null) continue
    const end = lines.indexOf('```', i + 1)
    const code = lines.slice(i + 1, end).join('\n')
    const language = fence[1]
    const start = i
    i = end
    if (!['ts', 'typescript', 'js', 'javascript'].includes(language)) continue
    let before = start - 1
    while (before >= 0 && lines[before].trim() === '') before--
    const marker = MARKER.exec(lines[before] ?? '')
    if (marker === null) {
      unmarked.push(start + 1)
      continue
    }
    const names = marker[2]?.trim().split(' ') ?? []
    unknownContexts.push(...names.filter((name) => contexts[name] === undefined))
    snippets.push({
      line: start + 2,
      kind: (marker[2] === undefined ? marker[1] : 'fragment') as Kind,
      source: code,
      prelude: names.map((name) => contexts[name] ?? '').join('\n'),
      section
    })
  }
  return { snippets, unmarked, unknownContexts }
}

const { snippets, unmarked, unknownContexts } = extract(readme)

t.test('every TypeScript and JavaScript block of the README is marked', async (t) => {
  t.same(unmarked, [], 'README lines of blocks without a <!-- snippet: ... --> comment before them')
  t.same(unknownContexts, [], 'contexts named by fragments are known')
  t.ok(snippets.length >= 15, `${snippets.length} blocks found`)
  t.ok(snippets.some((snippet) => snippet.kind === 'program'), 'some are whole programs')
})

t.test('the extractor', async (t) => {
  const sample = [
    '```sh', 'npm test', '```',
    '<!-- snippet: fragment app redis -->', '', '```ts', 'app.get("/", handler)', '```',
    '```js', 'require("x")', '```',
    '<!-- snippet: whatever -->', '```ts', 'x', '```'
  ].join('\n')
  const found = extract(sample)
  t.same(found.snippets.map(({ line, kind, source }) => ({ line, kind, source })), [{ line: 7, kind: 'fragment', source: 'app.get("/", handler)' }])
  t.equal(extract('## Usage\n<!-- snippet: module -->\n```ts\nx\n```').snippets[0].section, 'Usage')
  t.equal(found.snippets[0].prelude, `${contexts.app}\n${contexts.redis}`)
  t.same(found.unmarked, [9, 13], 'a block without a marker, or with an unknown one, is reported')
  t.same(extract('<!-- snippet: fragment nope -->\n```ts\nx\n```').unknownContexts, ['nope'])
})

// Each block in a file of its own, in a scratch folder of the repository (where Node finds the
// dependencies), with a tsconfig.json that maps the package to its sources, for tsc and for tsx.
const dir = t.testdir({
  'tsconfig.json': JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'preserve',
      moduleResolution: 'bundler',
      lib: ['ES2022'],
      types: ['node'],
      strict: true,
      exactOptionalPropertyTypes: true,
      skipLibCheck: true,
      noEmit: true,
      paths: {
        'fastify-cognito-jwt': [join(root, 'index.ts')],
        'fastify-cognito-jwt/testing': [join(root, 'testing.ts')]
      }
    }
  })
})

interface Written { snippet: Snippet, file: string, offset: number }

const written: Written[] = snippets.map((snippet) => {
  const file = join(dir, `readme-line-${snippet.line}.${snippet.kind === 'commonjs' ? 'cts' : 'mts'}`)
  const prelude = snippet.prelude === '' ? '' : `${snippet.prelude}\n`
  // `export {}` keeps a block without imports a module of its own.
  writeFileSync(file, `${prelude}${snippet.source}\n${snippet.kind === 'commonjs' ? '' : 'export {}\n'}`)
  return { snippet, file, offset: prelude === '' ? 0 : prelude.split('\n').length - 1 }
})

function typeErrors (files: Written[]): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
  if (parsed === undefined) throw new Error('the snippets\' tsconfig.json does not parse')
  const program = ts.createProgram(files.map(({ file }) => file), parsed.options)
  const errors: string[] = []
  for (const { snippet, file, offset } of files) {
    const source = program.getSourceFile(file)
    if (source === undefined) throw new Error(`not in the program: ${file}`)
    for (const diagnostic of [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]) {
      const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
      const where = line < offset ? `the context of README line ${snippet.line}` : `README line ${snippet.line + line - offset}`
      errors.push(`${where}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`)
    }
  }
  return errors
}

t.test('the blocks type-check against the sources', async (t) => {
  const declaresUser = (item: Written): boolean => /declare module/.test(item.snippet.prelude + item.snippet.source)
  const shared = written.filter((item) => !declaresUser(item))
  const own = written.filter(declaresUser)
  t.ok(own.length >= 1, 'some declare a user type')
  for (const group of [shared, ...own.map((item) => [item])]) {
    t.same(typeErrors(group), [], `README lines ${group.map((item) => item.snippet.line).join(', ')}`)
  }
})

t.test('the whole programs run, offline, and end on their own', async (t) => {
  for (const { snippet, file } of written.filter((item) => item.snippet.kind === 'program')) {
    t.test(`README line ${snippet.line} (${snippet.section})`, async (t) => {
      // Run as a reader runs it (tsx), without the test runner's loaders or coverage.
      const child = spawn(process.execPath, ['--import', 'tsx', file], {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: '', _TAPJS_PROCESSINFO_COVERAGE_: '0' },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      let output = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
      const [code, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null]
      clearTimeout(timer)
      t.same({ code, signal }, { code: 0, signal: null }, `exits 0 by itself within 30 s\n${output}`)
    })
  }
})
