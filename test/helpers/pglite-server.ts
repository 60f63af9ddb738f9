import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/**
 * A Postgres with pgvector for tests: PGlite (Postgres compiled to WASM, in this process) with
 * its pgvector extension, served over the wire protocol on a free loopback port. The Postgres the
 * tests otherwise use has no pgvector.
 */
export interface PgliteServer {
  /** A postgres:// URL for Switchboard's database config. */
  url: string;
  stop(): Promise<void>;
}

export async function startPgliteServer(): Promise<PgliteServer> {
  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 32 });
  // Connections take their queue from the server when they attach: replaced before any does.
  (server as unknown as { queryQueue: OneSessionQueue }).queryQueue = new OneSessionQueue(db);
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}

interface Queued {
  handlerId: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (err: unknown) => void;
}

const SYNC = 0x53;
const QUERY = 0x51;
const TERMINATE = 0x58;

/**
 * PGlite is one backend session shared by every connection. pglite-socket's own queue keeps an
 * explicit transaction to its connection, but hands the session to another connection between
 * the messages of one extended-protocol query (Parse, Bind, Execute … Sync): a pool of
 * connections then runs statements with another connection's parameters. This queue gives the
 * session to a connection from its first message until a Sync or simple Query completes outside a
 * transaction block (so a transaction keeps it too).
 */
class OneSessionQueue {
  private queue: Queued[] = [];
  private owner: number | null = null;
  private running = false;

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, message, onData, resolve, reject });
      void this.run();
    });
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    for (const item of this.queue.filter((q) => q.handlerId === handlerId))
      item.reject(new Error("connection closed"));
    this.queue = this.queue.filter((q) => q.handlerId !== handlerId);
  }

  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return;
    if (this.db.isInTransaction()) await this.db.exec("rollback");
    this.owner = null;
    await this.run();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const at = this.owner === null ? 0 : this.queue.findIndex((q) => q.handlerId === this.owner);
        const item = at >= 0 ? this.queue[at] : undefined;
        if (!item) return;
        this.queue.splice(at, 1);
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(item.message, {
              onRawData: (data: Uint8Array) => {
                bytes += data.length;
                item.onData(data);
              },
            }),
          );
          item.resolve(bytes);
        } catch (err) {
          item.reject(err);
        }
        // A startup packet has no type byte (it starts with its length, whose first byte is 0).
        const type = item.message[0];
        const done = type === SYNC || type === QUERY || type === TERMINATE || type === 0;
        this.owner = done && !this.db.isInTransaction() ? null : item.handlerId;
      }
    } finally {
      this.running = false;
    }
  }
}
