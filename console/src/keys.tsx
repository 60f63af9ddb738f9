import { useCallback, useEffect, useState } from "preact/hooks";
import { AdminError } from "./admin-help.js";
import { api, listModels } from "./api.js";
import { CopyButton } from "./copy-button.js";

interface Project {
  id: string;
  name: string;
  status: string;
  created_at: number;
}

interface ApiKey {
  id: string;
  name: string;
  hint: string;
  role: string;
  allowed_models: string[] | null;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  secret?: string;
}

const date = (seconds: number | null) => (seconds === null ? "—" : new Date(seconds * 1000).toLocaleString());
const positiveInt = (text: string) =>
  /^\d+$/.test(text.trim()) && Number(text) > 0 ? Number(text) : undefined;

export function Keys() {
  const [projects, setProjects] = useState<Project[]>([]);
  const [archived, setArchived] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [name, setName] = useState("");

  const load = useCallback(async () => {
    try {
      const res = await api<{ data: Project[] }>(
        "GET",
        `/admin/projects${archived ? "?include_archived=true" : ""}`,
      );
      setProjects(res.data);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [archived]);

  useEffect(() => {
    void load();
    window.addEventListener("switchboard-key", load);
    return () => window.removeEventListener("switchboard-key", load);
  }, [load]);

  const create = async (event: Event) => {
    event.preventDefault();
    try {
      const project = await api<Project>("POST", "/admin/projects", { name: name.trim() });
      setName("");
      setSelected(project.id);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const archive = async (project: Project) => {
    if (!window.confirm(`Archive project ${project.name}? Its keys stop working.`)) return;
    try {
      await api("DELETE", `/admin/projects/${encodeURIComponent(project.id)}`);
      if (selected === project.id) setSelected(null);
      await load();
    } catch (e) {
      setError(e);
    }
  };

  const current = projects.find((p) => p.id === selected);
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">Keys and projects</h1>
      {error !== null && <AdminError error={error} />}
      <form class="inline" onSubmit={create}>
        <label class="field">
          <span>New project</span>
          <input
            name="project-name"
            value={name}
            required
            maxLength={256}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={!name.trim()}>
          Create project
        </button>
        <label class="check">
          <input type="checkbox" checked={archived} onChange={(e) => setArchived(e.currentTarget.checked)} />{" "}
          Show archived
        </label>
      </form>
      <div class="table-wrap">
        <table data-testid="projects">
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">ID</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.id} data-project={p.name} aria-selected={p.id === selected}>
                <th scope="row">{p.name}</th>
                <td>
                  <code>{p.id}</code>
                </td>
                <td data-col="status">{p.status}</td>
                <td>{date(p.created_at)}</td>
                <td class="row-actions">
                  <button type="button" class="quiet" onClick={() => setSelected(p.id)}>
                    Keys
                  </button>
                  {p.status === "active" && (
                    <button type="button" class="quiet" onClick={() => archive(p)}>
                      Archive
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {current && <ProjectKeys key={current.id} project={current} />}
    </section>
  );
}

function ProjectKeys({ project }: { project: Project }) {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [models, setModels] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [form, setForm] = useState({ name: "", role: "member", rpm: "", tpm: "", concurrent: "" });
  const [allowed, setAllowed] = useState<string[]>([]);
  const base = `/admin/projects/${encodeURIComponent(project.id)}/keys`;

  const load = useCallback(async () => {
    try {
      setKeys((await api<{ data: ApiKey[] }>("GET", base)).data);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [base]);
  useEffect(() => {
    void load();
    listModels()
      .then((list) => setModels(list.map((m) => m.id)))
      .catch(() => setModels([]));
  }, [load]);

  const create = async (event: Event) => {
    event.preventDefault();
    const limits: Record<string, number> = {};
    const rpm = positiveInt(form.rpm);
    const tpm = positiveInt(form.tpm);
    const concurrent = positiveInt(form.concurrent);
    if (rpm) limits.requests_per_minute = rpm;
    if (tpm) limits.tokens_per_minute = tpm;
    if (concurrent) limits.max_concurrent = concurrent;
    try {
      const key = await api<ApiKey>("POST", base, {
        name: form.name.trim(),
        role: form.role,
        allowed_models: allowed.length > 0 ? allowed : null,
        ...(Object.keys(limits).length > 0 ? { limits } : {}),
      });
      setCreated(key);
      setForm({ name: "", role: "member", rpm: "", tpm: "", concurrent: "" });
      setAllowed([]);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const revoke = async (key: ApiKey) => {
    if (!window.confirm(`Revoke key ${key.name}? It stops working at once.`)) return;
    try {
      await api("DELETE", `${base}/${encodeURIComponent(key.id)}`);
      await load();
    } catch (e) {
      setError(e);
    }
  };
  const input = (
    field: keyof typeof form,
    label: string,
    attrs: Record<string, string | number | boolean> = {},
  ) => (
    <label class="field">
      <span>{label}</span>
      <input
        name={`key-${field}`}
        value={form[field]}
        onInput={(e) => setForm({ ...form, [field]: e.currentTarget.value })}
        {...attrs}
      />
    </label>
  );

  return (
    <section aria-labelledby="project-keys-title" class="panel">
      <h2 id="project-keys-title">Keys of {project.name}</h2>
      {error !== null && <AdminError error={error} />}
      {created?.secret && (
        <div class="notice" role="status" data-testid="new-key">
          <p>
            <strong>The secret of key {created.name}</strong> is shown this once; store it now.
          </p>
          <pre data-testid="new-secret">{created.secret}</pre>
          <CopyButton text={created.secret} label="Copy secret" />
          <button type="button" class="quiet" onClick={() => setCreated(null)}>
            I have stored it
          </button>
        </div>
      )}
      {project.status === "active" && (
        <form class="key-form" onSubmit={create}>
          {input("name", "Key name", { required: true, maxLength: 256 })}
          <label class="field">
            <span>Role</span>
            <select
              name="key-role"
              value={form.role}
              onChange={(e) => setForm({ ...form, role: e.currentTarget.value })}
            >
              <option value="member">member</option>
              <option value="admin">admin</option>
            </select>
          </label>
          {input("rpm", "Requests/min", { type: "number", min: 1, placeholder: "no limit" })}
          {input("tpm", "Tokens/min", { type: "number", min: 1, placeholder: "no limit" })}
          {input("concurrent", "Concurrent", { type: "number", min: 1, placeholder: "no limit" })}
          <fieldset class="wide">
            <legend>Allowed models (none ticked: every model)</legend>
            {models.map((m) => (
              <label class="check" key={m}>
                <input
                  type="checkbox"
                  checked={allowed.includes(m)}
                  onChange={(e) =>
                    setAllowed(e.currentTarget.checked ? [...allowed, m] : allowed.filter((x) => x !== m))
                  }
                />{" "}
                {m}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={!form.name.trim()}>
            Create key
          </button>
        </form>
      )}
      <div class="table-wrap">
        <table data-testid="keys">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Hint</th>
              <th scope="col">Role</th>
              <th scope="col">Models</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-key={k.name}>
                <th scope="row">{k.name}</th>
                <td>
                  <code>{k.hint}</code>
                </td>
                <td>{k.role}</td>
                <td data-col="models">{k.allowed_models ? k.allowed_models.join(", ") : "all"}</td>
                <td>{date(k.created_at)}</td>
                <td>{date(k.last_used_at)}</td>
                <td data-col="status">{k.revoked_at === null ? "active" : "revoked"}</td>
                <td>
                  {k.revoked_at === null && (
                    <button type="button" class="quiet" onClick={() => revoke(k)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
