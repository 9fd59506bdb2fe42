import t from 'tap'
import { BadAuthorizationHeaderError, NoTokenError } from '../lib/errors'
import { extractBearer } from '../lib/extract'

t.test('the token after "Bearer" is returned', async (t) => {
  t.equal(extractBearer('Bearer abc.def.ghi'), 'abc.def.ghi')
})

t.test('the scheme is matched in any case', async (t) => {
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    t.equal(extractBearer(`${scheme} abc`), 'abc', scheme)
  }
})

t.test('several spaces after the scheme, and spaces after the token, are tolerated', async (t) => {
  t.equal(extractBearer('Bearer    abc'), 'abc')
  t.equal(extractBearer('Bearer abc   '), 'abc')
  t.equal(extractBearer('Bearer   abc   '), 'abc')
})

t.test('no header, another scheme or a longer scheme name mean no token', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['absent', undefined],
    ['empty', ''],
    ['shorter than the scheme', 'Bear'],
    ['Basic', 'Basic dXNlcjpwYXNz'],
    ['Bearerx', 'Bearerx abc'],
    ['tab after the scheme', 'Bearer\tabc'],
    ['space before the scheme', ' Bearer abc']
  ]
  for (const [name, header] of cases) {
    t.ok(extractBearer(header) instanceof NoTokenError, name)
  }
})

t.test('a Bearer header without exactly one token is malformed', async (t) => {
  const cases: Array<[string, string]> = [
    ['scheme alone', 'Bearer'],
    ['scheme alone, lower case', 'bearer'],
    ['only spaces', 'Bearer   '],
    ['two tokens', 'Bearer a b'],
    ['two tokens, several spaces', 'Bearer  a   b  '],
    ['a tab inside', 'Bearer a\tb'],
    ['a trailing tab', 'Bearer abc\t'],
    ['a tab after spaces', 'Bearer  \tabc']
  ]
  for (const [name, header] of cases) {
    t.ok(extractBearer(header) instanceof BadAuthorizationHeaderError, name)
  }
})

t.test('long runs of spaces around the token', async (t) => {
  // Only spaces after the scheme: malformed, not a token made of spaces.
  t.ok(extractBearer(`Bearer ${' '.repeat(100_000)}`) instanceof BadAuthorizationHeaderError)
  t.equal(extractBearer(`Bearer ${' '.repeat(50_000)}abc${' '.repeat(50_000)}`), 'abc')
})
