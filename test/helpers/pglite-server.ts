import { PGlite } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/**
 * A Postgres with pgvector for tests: PGlite (Postgres compiled to WASM, in this process) with
 * its pgvector extension, served over the wire protocol on a free loopback port. The Postgres the
 * tests otherwise use has no pgvector. PGlite is one session: the socket server runs one
 * connection's transaction at a time, so a pool of connections works, serialized.
 */
export interface PgliteServer {
  /** A postgres:// URL for Switchboard's database config. */
  url: string;
  stop(): Promise<void>;
}

export async function startPgliteServer(): Promise<PgliteServer> {
  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 32 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
