// CPU kernels of the casnat alignment ops: one utterance per OpenMP task, parallel over the batch.
//
// Viterbi has two kernels with identical results: for U <= 127 on CPUs with AVX-512 a register
// kernel (viterbi_registers, below), and otherwise the general one (viterbi_one):
// max-product over the blank-extended target (S = 2U+1 states), float32 accumulation,
// restricted to the band of states that are reachable from the start and can still reach the end.
// Per frame only the S needed log-probs are gathered from the (V,) row, never the whole row.
// Backpointers are one byte per (frame, state) in a per-thread buffer reused across utterances.
// The state loops carry `omp simd simdlen(16)`: left alone, GCC sizes the vectors by the narrowest
// type (the uint8 backpointer), i.e. 64 states per AVX-512 iteration, so bands of fewer than 32
// states (U < 32, the common case for sentences of tens of tokens) ran entirely scalar.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../ctc_align.h"

namespace casnat {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kPrefetch = 8;  // frames ahead (measured: 8 to 16 are best)
constexpr int64_t kWholeRowPrefetch = 1024;  // rows up to 4 KiB are prefetched whole

// Blank states (s = 2u, u = 0..U) and label states (s = 2u + 1, u = 0..U-1) are kept in separate
// arrays, so every loop below runs over contiguous memory and vectorizes (gather included).
struct Workspace {
  std::vector<float> buf;      // alpha rows (blank, label) x (prev, cur) and per-label constants
  std::vector<int32_t> tgt;    // target ids as int32 (vector gathers)
  std::vector<uint8_t> bp;     // (T, U+1) blank decisions, then (T, U) label decisions
  std::vector<uint16_t> masks; // register kernel: (T, 3, NV) decision bitmasks
};

// Number of frames a path needs: one per label plus one blank between repeated labels.
inline int64_t min_frames(const int64_t* tgt, int64_t U) {
  int64_t repeats = 0;
  for (int64_t u = 1; u < U; ++u) repeats += tgt[u] == tgt[u - 1];
  return U + repeats;
}

// Band of live states at frame t (those reachable from the start that can still reach the end),
// as label indices [l_lo, l_hi]; the label states outside it never feed a state inside it.
inline void label_band(int64_t t, int64_t T, int64_t S, int64_t& l_lo, int64_t& l_hi) {
  const int64_t lo = std::max<int64_t>(0, S - 2 - 2 * (T - 1 - t));
  const int64_t hi = std::min<int64_t>(S - 1, 2 * t + 1);
  l_lo = lo / 2;
  l_hi = hi >= 1 ? (hi - 1) / 2 : -1;
}

// Prefetch the blank and the band's label columns of a row kPrefetch frames ahead into L2 (with
// V in the thousands each label is its own cache line, too many streams for the hardware
// prefetchers); short rows with at least one label per line are fetched whole. Forced inline:
// as a plain inline helper (with label_band) it left the general kernel ~25% slower at U = 300
// in an A/B run against the written-out loop; forced, it matched.
__attribute__((always_inline)) inline void prefetch_row(const float* pf_row, int64_t V,
                                                        int64_t blank, const int32_t* y,
                                                        int64_t l_lo, int64_t l_hi) {
  if (V <= kWholeRowPrefetch && l_hi - l_lo + 1 >= (V + 15) / 16) {
    for (int64_t v = 0; v < V; v += 16) __builtin_prefetch(pf_row + v, 0, 1);
  } else {
    __builtin_prefetch(pf_row + blank, 0, 1);
    for (int64_t u = l_lo; u <= l_hi; ++u) __builtin_prefetch(pf_row + y[u], 0, 1);
  }
}

// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the best the CPU supports.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CASNAT_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CASNAT_MULTIVERSION
#endif

// One utterance. lp: (T, V) row-major rows of length V; path: T outputs. Returns the path score.
//
// Recursion over the states of the blank-extended target, written per kind of state:
//   blank 2u:   alpha = max(stay 2u, prev 2u-1) + lp[t, blank]
//   label 2u+1: alpha = max(stay 2u+1, prev 2u, skip 2u-1 if y[u] != y[u-1]) + lp[t, y[u]]
// with the tie rule of ctc_align.h (a move wins only if strictly better than all smaller moves).
CASNAT_MULTIVERSION float viterbi_one(const float* lp, int64_t T, int64_t V, const int64_t* tgt,
                                      int64_t U, int64_t blank, int64_t* path, Workspace& ws) {
  if (T < min_frames(tgt, U) || T == 0) {
    std::fill(path, path + T, -1);
    return (T == 0 && U == 0) ? 0.f : kNegInf;
  }
  const int64_t S = 2 * U + 1;
  const int64_t NB = U + 1;  // blank states
  const int64_t NL = U + 1;  // label states incl. one leading -inf pad (index -1)
  ws.buf.assign(2 * NB + 2 * NL + 2 * U + 1, kNegInf);
  ws.tgt.resize(U + 1);
  if (static_cast<int64_t>(ws.bp.size()) < T * S) ws.bp.resize(T * S);
  float* ab_prev = ws.buf.data();
  float* ab_cur = ab_prev + NB;
  float* al_prev = ab_cur + NB + 1;  // al[-1] is the pad
  float* al_cur = al_prev + NL;
  float* __restrict skip_add = al_cur + NL - 1;  // (U,)
  float* __restrict emit = skip_add + U;         // (U,) label log-probs at the current frame
  int32_t* __restrict y = ws.tgt.data();
  uint8_t* bpb = ws.bp.data();       // (T, U+1)
  uint8_t* bpl = bpb + T * NB;       // (T, U)
  for (int64_t u = 0; u < U; ++u) {
    y[u] = static_cast<int32_t>(tgt[u]);
    skip_add[u] = (u >= 1 && tgt[u] != tgt[u - 1]) ? 0.f : kNegInf;
  }
  ab_prev[0] = lp[blank];
  if (U > 0) al_prev[0] = lp[y[0]];
  for (int64_t t = 1; t < T; ++t) {
    const int64_t lo = std::max<int64_t>(0, S - 2 - 2 * (T - 1 - t));
    const int64_t hi = std::min<int64_t>(S - 1, 2 * t + 1);
    const int64_t b_lo = (lo + 1) / 2, b_hi = hi / 2;          // blank states in the band
    const int64_t l_lo = lo / 2, l_hi = hi >= 1 ? (hi - 1) / 2 : -1;  // label states
    const float* __restrict row = lp + t * V;
    // Gather the label log-probs, and prefetch the same columns kPrefetch frames ahead.
#pragma omp simd simdlen(16)
    for (int64_t u = l_lo; u <= l_hi; ++u) emit[u] = row[y[u]];
    prefetch_row(lp + std::min(t + kPrefetch, T - 1) * V, V, blank, y, l_lo, l_hi);
    const float eb = row[blank];
    {
      const float* __restrict ab = ab_prev;
      const float* __restrict al = al_prev;
      float* __restrict out = ab_cur;
      uint8_t* __restrict bp = bpb + t * NB;
#pragma omp simd simdlen(16)
      for (int64_t u = b_lo; u <= b_hi; ++u) {
        const float a0 = ab[u];
        const float a1 = al[u - 1];
        const bool take1 = a1 > a0;
        out[u] = (take1 ? a1 : a0) + eb;
        bp[u] = static_cast<uint8_t>(take1);
      }
    }
    {
      const float* __restrict ab = ab_prev;
      const float* __restrict al = al_prev;
      float* __restrict out = al_cur;
      uint8_t* __restrict bp = bpl + t * U;
#pragma omp simd simdlen(16)
      for (int64_t u = l_lo; u <= l_hi; ++u) {
        const float a0 = al[u];
        const float a1 = ab[u];
        const float a2 = al[u - 1] + skip_add[u];
        const bool take1 = a1 > a0;
        const float m01 = take1 ? a1 : a0;
        const bool take2 = a2 > m01;
        out[u] = (take2 ? a2 : m01) + emit[u];
        bp[u] = static_cast<uint8_t>(take1) | static_cast<uint8_t>(take2 << 1);
      }
    }
    std::swap(ab_prev, ab_cur);
    std::swap(al_prev, al_cur);
  }
  // End on the last label (S-2) unless the trailing blank (S-1) is strictly better.
  int64_t s = (U == 0 || ab_prev[U] > al_prev[U - 1]) ? S - 1 : S - 2;
  const float score = (s & 1) ? al_prev[s >> 1] : ab_prev[s >> 1];
  if (!(score > kNegInf)) {  // -inf emissions (or NaN) left no valid path
    std::fill(path, path + T, -1);
    return kNegInf;
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t u = s >> 1;
    if (s & 1) {
      path[t] = tgt[u];
      if (t > 0) {
        const uint8_t k = bpl[t * U + u];
        s -= (k & 2) ? kSkip : (k & 1);
      }
    } else {
      path[t] = blank;
      if (t > 0) s -= bpb[t * NB + u];
    }
  }
  return score;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CASNAT_REGISTER_KERNEL 1
#include <immintrin.h>

// Register kernel for U < 16 * NV (NV = 1, 2, 4, 8: up to 127 labels), AVX-512 only.
//
// The general kernel keeps the alphas in memory and re-reads them shifted by one state, which
// costs store-forwarding stalls and loop prologues on every frame; with tens of labels that work,
// not memory, limited it (it took ~2x the time of just reading its inputs). Here the blank and
// label alphas live in NV zmm registers each, the shift by one state is a lane rotation, and the
// decisions are stored as bitmasks (6 bytes per frame and vector). Every state is updated every
// frame, but the emissions are gathered only for the band's labels (the rest read as -inf), so
// memory traffic equals the general kernel's; states outside the band never feed states inside
// it, so paths, scores and ties are identical to the general kernel's.
template <int NV>
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) float viterbi_registers(
    const float* lp, int64_t T, int64_t V, const int64_t* tgt, int64_t U, int64_t blank,
    int64_t* path, Workspace& ws) {
  constexpr int W = 16 * NV;
  const int64_t S = 2 * U + 1;
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  alignas(64) int32_t y[W];
  alignas(64) float skip[W];
  for (int u = 0; u < W; ++u) {
    y[u] = u < U ? static_cast<int32_t>(tgt[u]) : 0;
    skip[u] = (u >= 1 && u < U && tgt[u] != tgt[u - 1]) ? 0.f : kNegInf;
  }
  __m512i yv[NV];
  __m512 skv[NV], ab[NV], al[NV];
  for (int i = 0; i < NV; ++i) {
    yv[i] = _mm512_load_si512(y + 16 * i);
    skv[i] = _mm512_load_ps(skip + 16 * i);
    ab[i] = ninf;
    al[i] = ninf;
  }
  ab[0] = _mm512_mask_mov_ps(ab[0], 1, _mm512_set1_ps(lp[blank]));
  if (U > 0) al[0] = _mm512_mask_mov_ps(al[0], 1, _mm512_set1_ps(lp[y[0]]));
  ws.masks.resize(static_cast<size_t>(T) * 3 * NV);
  uint16_t* bp = ws.masks.data();  // per frame: NV blank, NV label-prev, NV label-skip masks
  for (int64_t t = 1; t < T; ++t) {
    int64_t l_lo, l_hi;
    label_band(t, T, S, l_lo, l_hi);
    const float* row = lp + t * V;
    prefetch_row(lp + std::min(t + kPrefetch, T - 1) * V, V, blank, y, l_lo, l_hi);
    const __m512 eb = _mm512_set1_ps(row[blank]);
    uint16_t* bpt = bp + t * 3 * NV;
    __m512 prev_al = ninf;  // al of the vector below, for the shift by one state
    for (int i = 0; i < NV; ++i) {
      // sh[u] = al[u - 1]: the skip and blank-from-label moves read the label state below
      const __m512 sh = _mm512_castsi512_ps(_mm512_alignr_epi32(
          _mm512_castps_si512(al[i]), _mm512_castps_si512(prev_al), 15));
      const int64_t a = std::clamp<int64_t>(l_lo - 16 * i, 0, 16);
      const int64_t b = std::clamp<int64_t>(l_hi + 1 - 16 * i, 0, 16);
      const __mmask16 band = static_cast<__mmask16>(((1u << b) - 1u) & ~((1u << a) - 1u));
      const __m512 em = _mm512_mask_i32gather_ps(ninf, band, yv[i], row, 4);
      // blank 2u: stay, or prev (label u-1) if strictly better
      const __mmask16 kb = _mm512_cmp_ps_mask(sh, ab[i], _CMP_GT_OQ);
      const __m512 nb = _mm512_add_ps(_mm512_mask_blend_ps(kb, ab[i], sh), eb);
      // label 2u+1: stay, prev (blank u) if strictly better, skip (label u-1) if better still
      const __mmask16 k1 = _mm512_cmp_ps_mask(ab[i], al[i], _CMP_GT_OQ);
      const __m512 m01 = _mm512_mask_blend_ps(k1, al[i], ab[i]);
      const __m512 a2 = _mm512_add_ps(sh, skv[i]);
      const __mmask16 k2 = _mm512_cmp_ps_mask(a2, m01, _CMP_GT_OQ);
      prev_al = al[i];
      al[i] = _mm512_add_ps(_mm512_mask_blend_ps(k2, m01, a2), em);
      ab[i] = nb;
      bpt[i] = kb;
      bpt[NV + i] = k1;
      bpt[2 * NV + i] = k2;
    }
  }
  alignas(64) float fb[W], fl[W];
  for (int i = 0; i < NV; ++i) {
    _mm512_store_ps(fb + 16 * i, ab[i]);
    _mm512_store_ps(fl + 16 * i, al[i]);
  }
  int64_t s = (U == 0 || fb[U] > fl[U - 1]) ? S - 1 : S - 2;
  const float score = (s & 1) ? fl[s >> 1] : fb[s >> 1];
  if (!(score > kNegInf)) {
    std::fill(path, path + T, -1);
    return kNegInf;
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t u = s >> 1;
    const uint16_t* bpt = bp + t * 3 * NV + (u >> 4);
    const int bit = static_cast<int>(u & 15);
    if (s & 1) {
      path[t] = tgt[u];
      if (t > 0) s -= ((bpt[2 * NV] >> bit) & 1) ? kSkip : ((bpt[NV] >> bit) & 1);
    } else {
      path[t] = blank;
      if (t > 0) s -= (bpt[0] >> bit) & 1;
    }
  }
  return score;
}

// The register kernel runs where the CPU has AVX-512 and U <= 127, unless CASNAT_ALIGN_REGISTERS=0
// (read per call, so tests can run the general kernel on the same machine).
bool use_register_kernel(int64_t Umax) {
  static const bool has_avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (!has_avx512 || Umax > 127) return false;
  const char* env = std::getenv("CASNAT_ALIGN_REGISTERS");
  return env == nullptr || std::string(env) != "0";
}
#else
bool use_register_kernel(int64_t) { return false; }
#endif

// One utterance, by whichever kernel fits it.
float viterbi_dispatch(const float* lp, int64_t T, int64_t V, const int64_t* tgt, int64_t U,
                       int64_t blank, int64_t* path, Workspace& ws, bool registers) {
#ifdef CASNAT_REGISTER_KERNEL
  if (registers && T > 0 && T >= min_frames(tgt, U)) {
    if (U < 16) return viterbi_registers<1>(lp, T, V, tgt, U, blank, path, ws);
    if (U < 32) return viterbi_registers<2>(lp, T, V, tgt, U, blank, path, ws);
    if (U < 64) return viterbi_registers<4>(lp, T, V, tgt, U, blank, path, ws);
    return viterbi_registers<8>(lp, T, V, tgt, U, blank, path, ws);
  }
#endif
  return viterbi_one(lp, T, V, tgt, U, blank, path, ws);
}

std::tuple<at::Tensor, at::Tensor> ctc_viterbi_align_cpu(const at::Tensor& log_probs,
                                                         const at::Tensor& input_lengths,
                                                         const at::Tensor& targets,
                                                         const at::Tensor& target_lengths,
                                                         int64_t blank) {
  check_viterbi_inputs(log_probs, input_lengths, targets, target_lengths, blank);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), V = log_probs.size(2);
  const int64_t Umax = targets.size(1);
  const int64_t* in_len = input_lengths.data_ptr<int64_t>();
  const int64_t* tg_len = target_lengths.data_ptr<int64_t>();
  const int64_t* tgt = targets.data_ptr<int64_t>();
  // Validate serially: exceptions must not escape an OpenMP region.
  for (int64_t b = 0; b < B; ++b) {
    // Same wording as the Python checks, which casnat.align skips for CPU tensors (see viterbi.py).
    TORCH_CHECK(in_len[b] >= 0 && in_len[b] <= T, "ctc_viterbi_align: input_lengths must lie in [0, ",
                T, "], got input_lengths[", b, "] = ", in_len[b]);
    TORCH_CHECK(tg_len[b] >= 0 && tg_len[b] <= Umax,
                "ctc_viterbi_align: target_lengths must lie in [0, ", Umax, "], got target_lengths[",
                b, "] = ", tg_len[b]);
    for (int64_t u = 0; u < tg_len[b]; ++u) {
      const int64_t y = tgt[b * Umax + u];
      TORCH_CHECK(y >= 0 && y < V && y != blank, "ctc_viterbi_align: targets[", b, ", ", u,
                  "] = ", y, " must be in [0, V = ", V, ") and differ from blank = ", blank);
    }
  }
  at::Tensor alignment = at::full({B, T}, -1, targets.options());
  at::Tensor scores = at::empty({B}, log_probs.options());
  const float* lp = log_probs.data_ptr<float>();
  int64_t* out = alignment.data_ptr<int64_t>();
  float* sc = scores.data_ptr<float>();
  const int nthreads =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B)));
  const bool registers = use_register_kernel(Umax);
#pragma omp parallel num_threads(nthreads)
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      sc[b] = viterbi_dispatch(lp + b * T * V, in_len[b], V, tgt + b * Umax, tg_len[b], blank,
                               out + b * T, ws, registers);
    }
  }
  return {alignment, scores};
}

// Top-1 and top-2 labels of a row, ordered by (value descending, index ascending).
CASNAT_MULTIVERSION void top2(const float* row, int64_t V, int64_t& i1, float& m1, int64_t& i2) {
  i1 = 0;
  m1 = row[0];
  i2 = -1;
  float m2 = -std::numeric_limits<float>::infinity();
  for (int64_t v = 1; v < V; ++v) {
    const float x = row[v];
    if (x > m1) {
      m2 = m1;
      i2 = i1;
      m1 = x;
      i1 = v;
    } else if (x > m2 || i2 < 0) {
      m2 = x;
      i2 = v;
    }
  }
  if (i2 < 0) i2 = i1;  // V == 1
}

at::Tensor sample_alignments_cpu(const at::Tensor& log_probs, const at::Tensor& input_lengths,
                                 const at::Tensor& rand_bits, double log_threshold) {
  check_sample_inputs(log_probs, input_lengths, rand_bits);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), V = log_probs.size(2);
  const int64_t K1 = rand_bits.size(1);
  const int64_t* in_len = input_lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(in_len[b] >= 0 && in_len[b] <= T, "sample_alignments: input_lengths[", b,
                "] = ", in_len[b], " is outside [0, T = ", T, "]");
  }
  at::Tensor samples = at::full({B, K1 + 1, T}, -1, input_lengths.options());
  const float* lp = log_probs.data_ptr<float>();
  const uint8_t* bits = rand_bits.data_ptr<uint8_t>();
  int64_t* out = samples.data_ptr<int64_t>();
  const int nthreads = std::max(1, at::get_num_threads());
#pragma omp parallel for num_threads(nthreads) schedule(static) collapse(2)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      if (t >= in_len[b]) continue;
      int64_t i1, i2;
      float m1;
      top2(lp + (b * T + t) * V, V, i1, m1, i2);
      int64_t* o = out + b * (K1 + 1) * T + t;
      o[0] = i1;
      const bool uncertain = static_cast<double>(m1) < log_threshold;
      for (int64_t k = 1; k <= K1; ++k) {
        o[k * T] = (uncertain && (bits[(b * K1 + k - 1) * T + t] & 1)) ? i2 : i1;
      }
    }
  }
  return samples;
}

}  // namespace

TORCH_LIBRARY_IMPL(casnat, CPU, m) {
  m.impl("ctc_viterbi_align", &ctc_viterbi_align_cpu);
  m.impl("sample_alignments", &sample_alignments_cpu);
}

}  // namespace casnat
