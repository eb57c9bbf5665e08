import { connect } from 'node:net';

/** A RESP2 reply: status and bulk strings, integers, nil, arrays. */
export type RespValue = string | number | null | RespValue[];

/** An error reply of Redis (`-ERR …`, `-NOSCRIPT …`), or no reply in time. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
}

/** Parses one reply at `offset`; null when the buffer does not hold all of it yet. */
function parseReply(buffer: Buffer, offset: number): { value: RespValue | RedisReplyError; next: number } | null {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return null;
  const kind = String.fromCharCode(buffer[offset]!);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (kind) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new RedisReplyError(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (buffer.length < next + length + 2) return null;
      return { value: buffer.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, at);
        if (!item) return null;
        // An error inside an array (EXEC) is kept as its message.
        items.push(item.value instanceof RedisReplyError ? item.value.message : item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      return { value: new RedisReplyError(`unexpected reply type ${JSON.stringify(kind)}`), next: buffer.length };
  }
}

/**
 * Sends one command to a Redis server or sentinel on 127.0.0.1 (plain TCP,
 * no AUTH: the sandbox's Sentinel and Cluster servers) and resolves with its
 * reply. Enough for the sandbox to build a Cluster and ask a sentinel who the
 * master is, without a client library.
 * @throws RedisReplyError for an error reply or no reply within `timeoutMs`
 */
export function redisCall(port: number, args: readonly (string | number)[], timeoutMs = 2_000): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const finish = (err: Error | null, value?: RespValue) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(() => finish(new RedisReplyError(`no reply from 127.0.0.1:${port} to ${String(args[0])} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => {
      const parts = args.map(String);
      socket.write(`*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const reply = parseReply(received, 0);
      if (!reply) return;
      if (reply.value instanceof RedisReplyError) finish(reply.value);
      else finish(null, reply.value);
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new RedisReplyError(`127.0.0.1:${port} closed the connection before replying to ${String(args[0])}`)));
  });
}

/** The fields of an `INFO` reply (`key:value` lines). */
export function parseInfo(info: RespValue): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of String(info ?? '').split('\r\n')) {
    const sep = line.indexOf(':');
    if (sep > 0 && !line.startsWith('#')) fields[line.slice(0, sep)] = line.slice(sep + 1);
  }
  return fields;
}
