import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseInfo, RedisReplyError, redisCall } from './redis-call.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A loopback server that answers every command with `reply`, in two chunks (a reply may arrive split). */
async function replying(reply: string): Promise<number> {
  server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(reply.slice(0, 3));
      setTimeout(() => socket.write(reply.slice(3)), 10);
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

describe('redisCall', () => {
  it('parses nested arrays, bulk and status strings, integers and nil', async () => {
    const port = await replying('*4\r\n$9\r\n127.0.0.1\r\n:6380\r\n*2\r\n+OK\r\n$-1\r\n$6\r\nab\r\ncd\r\n');
    expect(await redisCall(port, ['SENTINEL', 'get-master-addr-by-name', 'x'])).toEqual(['127.0.0.1', 6380, ['OK', null], 'ab\r\ncd']);
  });

  it('rejects with the error reply', async () => {
    const port = await replying('-NOSCRIPT No matching script\r\n');
    await expect(redisCall(port, ['EVALSHA', 'x', 0])).rejects.toThrow(new RedisReplyError('NOSCRIPT No matching script'));
  });
});

describe('parseInfo', () => {
  it('reads key:value lines and skips section headers', () => {
    expect(parseInfo('# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=1\r\n')).toEqual({
      role: 'master',
      connected_slaves: '1',
      slave0: 'ip=127.0.0.1,port=1',
    });
  });
});
