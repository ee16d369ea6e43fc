// CPU kernels of the casnat alignment ops: one utterance per OpenMP task, parallel over the batch.
//
// Viterbi: max-product over the blank-extended target (S = 2U+1 states), float32 accumulation,
// restricted to the band of states that are reachable from the start and can still reach the end.
// Per frame only the S needed log-probs are gathered from the (V,) row, never the whole row.
// Backpointers are one byte per (frame, state) in a per-thread buffer reused across utterances.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../ctc_align.h"

namespace casnat {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kPrefetch = 4;  // frames ahead

struct Workspace {
  std::vector<float> alpha;     // two rows of S + 2 (two leading -inf pads for s-1, s-2)
  std::vector<float> skip_add;  // 0 where the skip s-2 -> s is allowed, -inf elsewhere
  std::vector<float> emit;      // log-probs of the S state labels at the current frame
  std::vector<int32_t> label;   // label of each state (int32: gathers vectorize)
  std::vector<uint8_t> bp;      // (T, S) decisions: bit 0 previous beat stay, bit 1 skip won
};

// Number of frames a path needs: one per label plus one blank between repeated labels.
inline int64_t min_frames(const int64_t* tgt, int64_t U) {
  int64_t repeats = 0;
  for (int64_t u = 1; u < U; ++u) repeats += tgt[u] == tgt[u - 1];
  return U + repeats;
}

// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the best the CPU supports.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CASNAT_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CASNAT_MULTIVERSION
#endif

// One utterance. lp: (T, V) row-major rows of length V; path: T outputs. Returns the path score.
CASNAT_MULTIVERSION float viterbi_one(const float* lp, int64_t T, int64_t V, const int64_t* tgt,
                                      int64_t U, int64_t blank, int64_t* path, Workspace& ws) {
  if (T < min_frames(tgt, U) || T == 0) {
    std::fill(path, path + T, -1);
    return (T == 0 && U == 0) ? 0.f : kNegInf;
  }
  const int64_t S = 2 * U + 1;
  ws.label.resize(S);
  ws.skip_add.resize(S);
  ws.emit.resize(S);
  ws.alpha.assign(2 * (S + 2), kNegInf);
  if (static_cast<int64_t>(ws.bp.size()) < T * S) ws.bp.resize(T * S);
  int32_t* __restrict label = ws.label.data();
  float* __restrict skip_add = ws.skip_add.data();
  float* __restrict emit = ws.emit.data();
  uint8_t* bp = ws.bp.data();
  for (int64_t s = 0; s < S; ++s) {
    const bool odd = s & 1;
    label[s] = static_cast<int32_t>(odd ? tgt[s >> 1] : blank);
    skip_add[s] = (odd && s >= 3 && tgt[s >> 1] != tgt[(s >> 1) - 1]) ? 0.f : kNegInf;
  }
  float* prev = ws.alpha.data() + 2;
  float* cur = prev + S + 2;
  prev[0] = lp[blank];
  if (S > 1) prev[1] = lp[label[1]];
  for (int64_t t = 1; t < T; ++t) {
    const int64_t lo = std::max<int64_t>(0, S - 2 - 2 * (T - 1 - t));
    const int64_t hi = std::min<int64_t>(S - 1, 2 * t + 1);
    // Gather the live labels' log-probs (one load per target label, the blank once) and prefetch
    // the same columns kPrefetch frames ahead: with V in the thousands every label is its own
    // cache line and the U+1 column streams are too many for the hardware prefetchers.
    const float* __restrict row = lp + t * V;
    const float* pf_row = lp + std::min(t + kPrefetch, T - 1) * V;
    const float eb = row[blank];
    const int64_t u_lo = lo / 2;
    const int64_t u_hi = hi >= 1 ? (hi - 1) / 2 : -1;
    for (int64_t u = u_lo; u <= u_hi; ++u) {
      emit[2 * u + 1] = row[label[2 * u + 1]];
      __builtin_prefetch(pf_row + label[2 * u + 1]);
    }
    for (int64_t s = lo + (lo & 1); s <= hi; s += 2) emit[s] = eb;
    uint8_t* __restrict bpt = bp + t * S;
    const float* __restrict p = prev;
    float* __restrict c = cur;
    for (int64_t s = lo; s <= hi; ++s) {  // branch-free so that it vectorizes
      const float a0 = p[s];
      const float a1 = p[s - 1];
      const float a2 = p[s - 2] + skip_add[s];
      const bool take1 = a1 > a0;  // strictly better: stay wins ties
      const float m01 = take1 ? a1 : a0;
      const bool take2 = a2 > m01;  // strictly better: stay / previous win ties
      c[s] = (take2 ? a2 : m01) + emit[s];
      bpt[s] = static_cast<uint8_t>(take1) | static_cast<uint8_t>(take2 << 1);  // decoded below
    }
    std::swap(prev, cur);
  }
  // End on the last label (S-2) unless the trailing blank (S-1) is strictly better.
  int64_t s = (S == 1) ? 0 : (prev[S - 1] > prev[S - 2] ? S - 1 : S - 2);
  const float score = prev[s];
  if (!(score > kNegInf)) {  // -inf emissions (or NaN) left no valid path
    std::fill(path, path + T, -1);
    return kNegInf;
  }
  for (int64_t t = T - 1; t > 0; --t) {
    path[t] = label[s];
    const uint8_t k = bp[t * S + s];
    s -= (k & 2) ? kSkip : (k & 1);
  }
  path[0] = label[s];
  return score;
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
    TORCH_CHECK(in_len[b] >= 0 && in_len[b] <= T, "ctc_viterbi_align: input_lengths[", b,
                "] = ", in_len[b], " is outside [0, T = ", T, "]");
    TORCH_CHECK(tg_len[b] >= 0 && tg_len[b] <= Umax, "ctc_viterbi_align: target_lengths[", b,
                "] = ", tg_len[b], " is outside [0, U = ", Umax, "]");
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
#pragma omp parallel num_threads(nthreads)
  {
    Workspace ws;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      sc[b] = viterbi_one(lp + b * T * V, in_len[b], V, tgt + b * Umax, tg_len[b], blank,
                          out + b * T, ws);
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
