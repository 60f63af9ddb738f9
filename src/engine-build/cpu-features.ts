import { readFileSync } from "node:fs";
import { arch, platform } from "node:os";

/**
 * Whether a `-march=native` build would compile ggml's AMX kernels: on x86-64 CPUs with AMX
 * (Sapphire Rapids and later). Those kernels crashed llama-server here on the first Q8_0 matrix
 * product (an invalid tile configuration, SIGSEGV in ldtilecfg; llama.cpp of node-llama-cpp 3.21.1,
 * GCC 12), while AMX itself worked; such builds use the CPU's other features instead.
 */
export function nativeWouldUseAmx(): boolean {
  return platform() === "linux" && arch() === "x64" && cpuFlags().has("amx_tile");
}

/**
 * ggml's x86 feature options equivalent to what `-march=native` would enable here, AMX left out:
 * for a native-speed build on a machine whose AMX cannot be used.
 */
export function x86FeatureFlags(): Record<string, string> {
  const have = cpuFlags();
  const on = (yes: boolean) => (yes ? "ON" : "OFF");
  return {
    GGML_SSE42: on(have.has("sse4_2")),
    GGML_F16C: on(have.has("f16c")),
    GGML_FMA: on(have.has("fma")),
    GGML_BMI2: on(have.has("bmi2")),
    GGML_AVX: on(have.has("avx")),
    GGML_AVX2: on(have.has("avx2")),
    GGML_AVX_VNNI: on(have.has("avx_vnni")),
    GGML_AVX512: on(["avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"].every((f) => have.has(f))),
    GGML_AVX512_VBMI: on(have.has("avx512vbmi")),
    GGML_AVX512_VNNI: on(have.has("avx512_vnni")),
    GGML_AVX512_BF16: on(have.has("avx512_bf16")),
    GGML_AMX_TILE: "OFF",
    GGML_AMX_INT8: "OFF",
    GGML_AMX_BF16: "OFF",
  };
}

function cpuFlags(): Set<string> {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("flags"));
    return new Set((line?.split(":")[1] ?? "").trim().split(/\s+/));
  } catch {
    return new Set();
  }
}
