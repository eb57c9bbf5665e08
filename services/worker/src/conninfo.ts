/**
 * libpq connection strings (`key=value key='quoted \' value'`), as found in
 * `primary_conninfo`: just enough to carry a replica's TLS settings over
 * when the worker repoints it.
 */

/** Keywords of a connection string that concern TLS. */
export const TLS_CONNINFO_KEYWORDS: ReadonlySet<string> = new Set([
  'sslmode',
  'sslnegotiation',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'sslcertmode',
  'sslcrl',
  'sslcrldir',
  'sslsni',
  'ssl_min_protocol_version',
  'ssl_max_protocol_version',
]);

const SPACE = /\s/;

/**
 * Parses a `key=value …` connection string.
 * @throws Error naming what is malformed (a URI is not accepted).
 */
export function parseConninfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && SPACE.test(text[i]!)) i++;
  };
  // A backslash escapes the next character, quoted or not (libpq's rule).
  const next = (): string => {
    if (text[i] === '\\' && i + 1 < text.length) i++;
    return text[i++]!;
  };
  for (skipSpace(); i < text.length; skipSpace()) {
    const start = i;
    while (i < text.length && text[i] !== '=' && !SPACE.test(text[i]!)) i++;
    const key = text.slice(start, i);
    skipSpace();
    if (text[i] !== '=' || key === '') throw new Error(`connection string: expected "key=value" at "${text.slice(start, start + 20)}"`);
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      i++;
      while (text[i] !== "'") {
        if (i >= text.length) throw new Error(`connection string: unterminated quoted value of "${key}"`);
        value += next();
      }
      i++;
    } else {
      while (i < text.length && !SPACE.test(text[i]!)) value += next();
    }
    out.set(key, value);
  }
  return out;
}

/** `key=value` pairs for libpq, a value quoted and escaped when it is empty or holds a space, quote or backslash. */
export function formatConninfo(entries: Iterable<[string, string]>): string {
  const quote = (value: string) => (/^[^\s'\\]+$/.test(value) ? value : `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`);
  return [...entries].map(([key, value]) => `${key}=${quote(value)}`).join(' ');
}
