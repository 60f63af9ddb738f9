import { unauthenticated } from "../core/errors.js";
import type { Repositories } from "../storage/repositories/types.js";
import { hashKeySecret, presentedSecret, sameHash } from "./api-key-secret.js";
import { OPEN_PRINCIPAL, type Principal } from "./principal.js";

export interface AuthenticatorOptions {
  repositories: Pick<Repositories, "apiKeys" | "projects">;
  /** Auth may be off only when the server listens on loopback and no key exists anywhere. */
  loopbackOnly: boolean;
  /** A bootstrap admin key from the environment (kept only as its hash). */
  bootstrapAdminKey?: string;
  now?: () => number;
  /** How long a verified key (or a miss) is trusted before storage is asked again. */
  cacheTtlMs?: number;
  /** Told when auth turns on or off as keys appear or disappear. */
  onModeChange?: (change: AuthModeChange) => void;
}

/** Auth switched on (the first key exists) or off (the last active key is gone). */
export interface AuthModeChange {
  required: boolean;
  activeKeys: number;
}

interface CacheEntry {
  /** The caller, or why the key is refused. */
  verdict: Principal | { refused: string };
  expires: number;
}

const CACHE_LIMIT = 10_000;

/**
 * Turns request headers into a Principal or a 401. Verified keys are cached briefly so the hot
 * path costs a hash and a map lookup; revocation and expiry take effect within the cache TTL
 * (and at once on the instance that revoked).
 */
export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly now: () => number;
  private readonly ttl: number;
  private readonly bootstrapHash: string | undefined;
  private keyCount: { value: number; expires: number } | undefined;
  /** Whether keys were required when last counted (undefined until the first count). */
  private lastMode: boolean | undefined;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
    this.ttl = options.cacheTtlMs ?? 5_000;
    this.bootstrapHash = options.bootstrapAdminKey ? hashKeySecret(options.bootstrapAdminKey) : undefined;
  }

  /** Whether requests must present a key right now. */
  async required(): Promise<boolean> {
    if (!this.options.loopbackOnly || this.bootstrapHash) return true;
    const now = this.now();
    if (!this.keyCount || this.keyCount.expires <= now) {
      const value = await this.options.repositories.apiKeys.countActive(now);
      const before = this.lastMode;
      this.lastMode = value > 0;
      if (before !== undefined && before !== this.lastMode) {
        this.options.onModeChange?.({ required: this.lastMode, activeKeys: value });
      }
      this.keyCount = { value, expires: now + this.ttl };
    }
    return this.keyCount.value > 0;
  }

  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<Principal> {
    const secret = presentedSecret(headers);
    if (!(await this.required())) {
      // Auth is off: SDKs insist on sending some key, so an unknown one is ignored; a real key
      // still identifies its project (and its limits).
      if (!secret) return openAccess();
      return this.verify(secret).catch(() => openAccess());
    }
    if (!secret) {
      throw unauthenticated(
        "You didn't provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_KEY).",
      );
    }
    return this.verify(secret);
  }

  /**
   * The caller, when that is known at once: keys are required (always, or counted recently) and
   * the presented key's cached verdict admits it. undefined: ask authenticate(), which also gives
   * every refusal. The hot path of a busy server, with no promise in it.
   */
  cachedPrincipal(headers: Record<string, string | string[] | undefined>): Principal | undefined {
    const now = this.now();
    if (this.options.loopbackOnly && !this.bootstrapHash) {
      const count = this.keyCount;
      if (!count || count.expires <= now || count.value === 0) return undefined;
    }
    const secret = presentedSecret(headers);
    if (!secret) return undefined;
    const entry = this.cache.get(hashKeySecret(secret));
    if (!entry || entry.expires <= now || "refused" in entry.verdict) return undefined;
    return entry.verdict;
  }

  /** Forget cached verdicts, e.g. after a key was revoked or changed on this instance. */
  invalidate(): void {
    this.cache.clear();
    this.keyCount = undefined;
  }

  private async verify(secret: string): Promise<Principal> {
    const hash = hashKeySecret(secret);
    const now = this.now();
    let entry = this.cache.get(hash);
    if (!entry || entry.expires <= now) {
      // The bootstrap key is compared on a miss only: its verdict is cached like any key's.
      const { verdict, expiresAt } =
        this.bootstrapHash && sameHash(hash, this.bootstrapHash)
          ? { verdict: bootstrapAdmin(), expiresAt: undefined }
          : await this.lookup(hash, now);
      // A key that expires sooner than the cache entry would is not trusted past its expiry.
      entry = { verdict, expires: Math.min(now + this.ttl, expiresAt ?? Number.POSITIVE_INFINITY) };
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(hash, entry);
    }
    // Never echo the presented key: clients log error messages.
    if ("refused" in entry.verdict) throw unauthenticated(entry.verdict.refused);
    return entry.verdict;
  }

  private async lookup(
    hash: string,
    now: number,
  ): Promise<{ verdict: CacheEntry["verdict"]; expiresAt?: number }> {
    const refused = (reason: string) => ({ verdict: { refused: reason } });
    const key = await this.options.repositories.apiKeys.findByHash(hash);
    if (!key || !sameHash(key.keyHash, hash)) return refused("Incorrect API key provided.");
    if (key.revokedAt !== null) return refused("This API key has been revoked.");
    if (key.expiresAt !== null && key.expiresAt <= now) return refused("This API key has expired.");
    const project = await this.options.repositories.projects.get(key.projectId);
    if (!project || project.archivedAt !== null) return refused("This API key's project has been archived.");
    return {
      verdict: {
        projectId: key.projectId,
        keyId: key.id,
        role: key.role,
        allowedModels: key.allowedModels,
        keyLimits: key.limits,
        projectLimits: project.limits,
      },
      expiresAt: key.expiresAt ?? undefined,
    };
  }
}

function openAccess(): Principal {
  return OPEN_PRINCIPAL;
}

function bootstrapAdmin(): Principal {
  return { ...OPEN_PRINCIPAL, keyId: "bootstrap", role: "admin" };
}
