import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { storedKey, storeKey } from "./api.js";
import { Keys } from "./keys.js";
import { Models } from "./models.js";
import { Playground } from "./playground.js";
import { Usage } from "./usage.js";
import "./styles.css";

interface Page {
  path: string;
  title: string;
  view: () => preact.JSX.Element;
}

const PAGES: Page[] = [
  { path: "playground", title: "Playground", view: () => <Playground /> },
  { path: "models", title: "Models", view: () => <Models /> },
  { path: "keys", title: "Keys", view: () => <Keys /> },
  { path: "usage", title: "Usage", view: () => <Usage /> },
];

/** Pages live in the fragment (#/models), so the server serves one file and the key never meets a URL. */
function currentPath(): string {
  const path = location.hash.replace(/^#\/?/, "");
  return PAGES.some((p) => p.path === path) ? path : "playground";
}

function KeyBox() {
  const [key, setKey] = useState(storedKey());
  const [saved, setSaved] = useState(storedKey() !== "");
  const save = (event: Event) => {
    event.preventDefault();
    storeKey(key.trim());
    setSaved(key.trim() !== "");
    window.dispatchEvent(new Event("switchboard-key"));
  };
  return (
    <form class="key-box" onSubmit={save}>
      <label for="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autocomplete="off"
        spellcheck={false}
        placeholder="optional while auth is off"
        value={key}
        onInput={(e) => {
          setKey(e.currentTarget.value);
          setSaved(false);
        }}
      />
      <button type="submit">{key.trim() ? "Use key" : "Clear"}</button>
      <span class="muted" role="status">
        {saved ? "Kept for this tab only" : ""}
      </span>
    </form>
  );
}

function App() {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0];
  useEffect(() => {
    document.title = `${page?.title ?? ""} · Switchboard`;
  }, [page]);
  return (
    <>
      <button type="button" class="skip" onClick={() => document.getElementById("main")?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <strong class="brand">Switchboard</strong>
        <nav aria-label="Console pages">
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={p.path === path ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <KeyBox />
      </header>
      <main id="main" tabIndex={-1}>
        {page?.view()}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
