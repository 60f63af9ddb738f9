import type { Cancellation } from "../core/cancellation.js";
import type { ModelBackend } from "../core/generation.js";
import type { Admitted } from "./deployment-state.js";
import type { DeploymentTarget } from "./deployment-target.js";

/** The deployment answering a routed call, and the admission it was let in with. */
export interface Served {
  target: DeploymentTarget;
  admission: Admitted;
}

/**
 * One kind of request as the router's retry loop sends it (a streamed chat's first part, the whole
 * answer of a chat whose caller takes it whole, a whole embedding answer), so every kind shares one
 * loop: balance order, refusals, retries with backoff, the deadline, fallbacks and circuits. `P` is
 * the request prepared for one backend; `R` the answer.
 */
export interface RoutedCall<P, R> {
  /** Tokens reserved against a deployment's tpm cap while the request runs. */
  readonly reservedTokens: number;
  /** A batch line: it may take only its share of a deployment's rpm / tpm caps. */
  readonly batch: boolean;
  /**
   * The answer goes on after `send` resolves (a stream): the caller's cancellation must keep
   * reaching it. Otherwise the router lets go of it once the answer is in (a worker's signal
   * outlives many calls).
   */
  readonly streamed: boolean;
  /**
   * The backend the request is prepared for already, while that preparation is unused: the router
   * tries it first (the balance was drawn when it was prepared; a second draw would often prepare
   * the request again elsewhere).
   */
  readonly preferred?: ModelBackend;
  /** Whether the backend has every capability the request needs; one without it is never asked. */
  serves(backend: ModelBackend): boolean;
  /**
   * The request as this backend takes it; a backend that cannot take it refuses (a caller fault).
   * A plain value where it is at hand already (a generation's first attempt), so that needs no await.
   */
  prepareFor(backend: ModelBackend): P | Promise<P>;
  /**
   * One attempt: resolves once the answer is committed (it can no longer be retried). `served` is
   * the deployment's books, absent where a fallback model answers outside of any deployment.
   * `begun` is called where an answer begins before it is committed (a generation taken whole):
   * the deadline bounds beginning an answer, not finishing it. `attempts` cuts the attempt: the
   * caller left, or the deadline passed.
   */
  send(
    backend: ModelBackend,
    prepared: P,
    attempts: Cancellation,
    served: Served | undefined,
    begun: () => void,
  ): Promise<R>;
  /** Tokens a failed attempt used at its deployment, which its tpm cap keeps. */
  spent(prepared: P): number;
}
