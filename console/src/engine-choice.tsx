/** Why a local model runs on its engine, as /ready and /admin/models report it. */
export interface EngineChoice {
  requested: string;
  reason: "configured" | "llama_server_found" | "no_llama_server";
  detail: string;
  binary?: {
    origin: string;
    /** Only from /admin/models (admin keys). */
    path?: string;
    revision?: string;
    release?: string;
    flags?: Record<string, string>;
    cuda?: boolean;
    builtAt?: string;
    compiler?: string;
  };
}

const REASONS: Record<EngineChoice["reason"], string> = {
  configured: "the config names it",
  llama_server_found: "auto: a llama-server binary was found",
  no_llama_server: "auto: no llama-server binary, so the runner",
};

/**
 * One model's engine choice: the reason in words and, for llama-server, the binary — where it
 * came from, the llama.cpp revision and build flags, and its path when an admin key shows it.
 */
export function EngineChoiceView(props: {
  model: string;
  engine: string;
  choice: EngineChoice;
  /** The binary's path from the admin API; undefined without an admin key. */
  path: string | undefined;
}) {
  const { choice } = props;
  const binary = choice.binary;
  const facts: [string, string, string | undefined][] = [
    ["requested", "Asked for", choice.requested],
    ["reason", "Chosen because", REASONS[choice.reason] ?? choice.reason],
  ];
  if (binary) {
    facts.push(
      ["origin", "Binary from", binary.origin],
      ["path", "Path", props.path ?? "(shown with an admin key)"],
      ["revision", "llama.cpp revision", binary.revision?.slice(0, 12)],
      ["release", "Release", binary.release],
      ["built", "Built", binary.builtAt && new Date(binary.builtAt).toLocaleString()],
      ["compiler", "Compiler", binary.compiler],
      ["cuda", "CUDA", binary.cuda === undefined ? undefined : binary.cuda ? "yes" : "no"],
      [
        "flags",
        "Build flags",
        binary.flags &&
          (Object.entries(binary.flags)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ") ||
            "(none)"),
      ],
    );
  }
  return (
    <article class="engine-choice" data-testid="engine-choice" data-model={props.model}>
      <h3>
        {props.model}: {props.engine}
      </h3>
      <p data-field="detail">{choice.detail}</p>
      <dl class="facts">
        {facts
          .filter(([, , value]) => value !== undefined)
          .map(([id, label, value]) => (
            <div key={id}>
              <dt>{label}</dt>
              <dd data-field={id}>{value}</dd>
            </div>
          ))}
      </dl>
    </article>
  );
}
