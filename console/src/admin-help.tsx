import { ApiError } from "./api.js";

/** Admin pages without an admin key: say how to get one instead of showing a bare 401/403. */
export function AdminError({ error }: { error: unknown }) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    return (
      <div class="notice" role="alert" data-testid="admin-help">
        <p>
          This page needs an <strong>admin key</strong> ({error.message}). Create one on the server's machine
          and type it in the API key field above:
        </p>
        <pre>switchboard keys create --admin --name console</pre>
        <p class="muted">
          Or start the server with a bootstrap key in <code>SWITCHBOARD_ADMIN_KEY</code>. The admin API needs
          a key even while auth is off, so that no other local program can mint keys.
        </p>
      </div>
    );
  }
  return (
    <p class="error" role="alert">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}
