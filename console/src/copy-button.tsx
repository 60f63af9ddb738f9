import { useState } from "preact/hooks";

/** Copies text to the clipboard and says so (politely, for screen readers). */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      // Clipboard access needs a secure context (https or localhost) and permission.
      setState("failed");
    }
    setTimeout(() => setState("idle"), 2000);
  };
  return (
    <span class="copy">
      <button type="button" class="quiet" onClick={copy}>
        {label}
      </button>
      <span role="status" class="muted">
        {state === "copied" ? "Copied" : state === "failed" ? "Copy failed: select the text instead" : ""}
      </span>
    </span>
  );
}
