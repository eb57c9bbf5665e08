import { createServer, type Server, type Socket, connect } from 'node:net';
import { freePort } from '@pgreplica/sandbox';

/**
 * A TCP proxy on 127.0.0.1 that a test can cut: `cut()` resets every
 * connection and refuses new ones (a partition seen from one side only),
 * `restore()` lets traffic through again.
 */
export class TcpProxy {
  readonly port: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;

  private constructor(port: number, server: Server) {
    this.port = port;
    this.#server = server;
  }

  /** Delay added to every chunk in both directions (a slow, not dead, server). */
  delayMs = 0;

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const port = await freePort();
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      if (proxy?.cut) {
        client.resetAndDestroy();
        return;
      }
      const upstream = connect({ host: targetHost, port: targetPort });
      for (const s of [client, upstream]) {
        proxy?.track(s);
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          const delay = proxy?.delayMs ?? 0;
          if (delay > 0) setTimeout(() => to.write(chunk), delay);
          else to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    proxy = new TcpProxy(port, server);
    return proxy;
  }

  get cut(): boolean {
    return this.#cut;
  }

  /** @internal */
  track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
  }

  /** Resets all connections and refuses new ones. */
  cutOff(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.resetAndDestroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cutOff();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
