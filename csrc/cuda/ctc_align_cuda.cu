// CUDA kernels of the casnat alignment ops (compiled only when torch has CUDA).
//
// Viterbi: one thread block per utterance; the threads sweep the band of states of a frame in
// parallel, synchronise, and move to the next frame; thread 0 backtracks. Same float32 operations,
// band and tie rule as the CPU kernel (see ctc_align.h), so paths and scores agree with it.
// Sampling: one warp per (utterance, frame) finds the top-2 labels by (value desc, id asc), then
// the warp writes the K samples. Target ids are validated by the Python wrapper (checking them here
// would need a device-to-host sync).
//
// Tested on an H200 (tools/gpu_check.sh: tests/align/test_cuda.py, tests/decode/test_cuda.py, and
// tools/bench_align.py --device cuda). A variant that staged 64 frames of emissions and
// backpointers in shared memory and backtracked with a warp was 0.9-1.4x this kernel's speed and
// was not kept: the recursion is bound by its T dependent steps, and the op takes ~2 ms for a
// batch of 32 x 1600 frames, far below a training step.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include <cstdint>

#include "../ctc_align.h"

namespace casnat {
namespace {

constexpr int kViterbiThreads = 256;
constexpr int kSampleWarps = 8;

__device__ __forceinline__ float neg_inf() { return -__int_as_float(0x7f800000); }

__global__ void viterbi_kernel(const float* __restrict__ lp, const int64_t* __restrict__ in_len,
                               const int64_t* __restrict__ tgt, const int64_t* __restrict__ tg_len,
                               int64_t T, int64_t V, int64_t Umax, int64_t blank, int64_t Smax,
                               float* __restrict__ alpha_ws, uint8_t* __restrict__ bp_ws,
                               int64_t* __restrict__ out, float* __restrict__ scores) {
  const int64_t b = blockIdx.x;
  const int64_t Tb = in_len[b];
  const int64_t U = tg_len[b];
  const int64_t S = 2 * U + 1;
  const float* lpb = lp + b * T * V;
  const int64_t* y = tgt + b * Umax;
  int64_t* path = out + b * T;  // pre-filled with -1
  __shared__ int64_t repeats;
  if (threadIdx.x == 0) {
    int64_t r = 0;
    for (int64_t u = 1; u < U; ++u) r += y[u] == y[u - 1];
    repeats = r;
  }
  __syncthreads();
  if (Tb < U + repeats || Tb == 0) {
    if (threadIdx.x == 0) scores[b] = (Tb == 0 && U == 0) ? 0.f : neg_inf();
    return;
  }
  float* prev = alpha_ws + b * 2 * (Smax + 2) + 2;
  float* cur = prev + Smax + 2;
  uint8_t* bp = bp_ws + b * T * Smax;
  for (int64_t s = static_cast<int64_t>(threadIdx.x) - 2; s < S; s += blockDim.x) {
    prev[s] = neg_inf();
    cur[s] = neg_inf();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    prev[0] = lpb[blank];
    if (S > 1) prev[1] = lpb[y[0]];
  }
  __syncthreads();
  for (int64_t t = 1; t < Tb; ++t) {
    const int64_t lo = max(static_cast<int64_t>(0), S - 2 - 2 * (Tb - 1 - t));
    const int64_t hi = min(S - 1, 2 * t + 1);
    const float* row = lpb + t * V;
    for (int64_t s = lo + threadIdx.x; s <= hi; s += blockDim.x) {
      const bool odd = s & 1;
      const int64_t label = odd ? y[s >> 1] : blank;
      const bool skip_ok = odd && s >= 3 && y[s >> 1] != y[(s >> 1) - 1];
      const float a0 = prev[s];
      const float a1 = prev[s - 1];
      const float a2 = skip_ok ? prev[s - 2] : neg_inf();
      float best = a0;
      uint8_t k = kStay;
      if (a1 > best) {
        best = a1;
        k = kPrev;
      }
      if (a2 > best) {
        best = a2;
        k = kSkip;
      }
      cur[s] = best + row[label];
      bp[t * Smax + s] = k;
    }
    __syncthreads();
    float* tmp = prev;
    prev = cur;
    cur = tmp;
  }
  if (threadIdx.x != 0) return;
  int64_t s = 0;
  if (S > 1) s = (prev[S - 1] > prev[S - 2]) ? S - 1 : S - 2;
  const float score = prev[s];
  scores[b] = score > neg_inf() ? score : neg_inf();
  if (!(score > neg_inf())) return;
  for (int64_t t = Tb - 1; t > 0; --t) {
    path[t] = (s & 1) ? y[s >> 1] : blank;
    s -= bp[t * Smax + s];
  }
  path[0] = (s & 1) ? y[s >> 1] : blank;
}

// (value, id) ordering of the sampler: larger value first, then smaller id; id < 0 is "empty".
__device__ __forceinline__ bool better(float xv, int64_t xi, float yv, int64_t yi) {
  if (yi < 0) return xi >= 0;
  if (xi < 0) return false;
  return xv > yv || (xv == yv && xi < yi);
}

__global__ void sample_kernel(const float* __restrict__ lp, const int64_t* __restrict__ in_len,
                              const uint8_t* __restrict__ bits, int64_t B, int64_t T, int64_t V,
                              int64_t K1, double log_threshold, int64_t* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t row_id = static_cast<int64_t>(blockIdx.x) * kSampleWarps + (threadIdx.x >> 5);
  if (row_id >= B * T) return;
  const int64_t b = row_id / T;
  const int64_t t = row_id % T;
  if (t >= in_len[b]) return;  // whole warp leaves together
  const float* row = lp + row_id * V;
  float m1 = 0.f, m2 = 0.f;
  int64_t i1 = -1, i2 = -1;
  for (int64_t v = lane; v < V; v += 32) {
    const float x = row[v];
    if (better(x, v, m1, i1)) {
      m2 = m1;
      i2 = i1;
      m1 = x;
      i1 = v;
    } else if (better(x, v, m2, i2)) {
      m2 = x;
      i2 = v;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float o1 = __shfl_down_sync(0xffffffffu, m1, offset);
    const int64_t j1 = __shfl_down_sync(0xffffffffu, i1, offset);
    const float o2 = __shfl_down_sync(0xffffffffu, m2, offset);
    const int64_t j2 = __shfl_down_sync(0xffffffffu, i2, offset);
    if (better(o1, j1, m1, i1)) {  // other's top-1 wins: second is the better of our 1 and its 2
      if (better(m1, i1, o2, j2)) {
        m2 = m1;
        i2 = i1;
      } else {
        m2 = o2;
        i2 = j2;
      }
      m1 = o1;
      i1 = j1;
    } else if (better(o1, j1, m2, i2)) {
      m2 = o1;
      i2 = j1;
    }
  }
  i1 = __shfl_sync(0xffffffffu, i1, 0);
  m1 = __shfl_sync(0xffffffffu, m1, 0);
  i2 = __shfl_sync(0xffffffffu, i2, 0);
  if (i2 < 0) i2 = i1;  // V == 1
  const bool uncertain = static_cast<double>(m1) < log_threshold;
  int64_t* o = out + b * (K1 + 1) * T + t;
  for (int64_t k = lane; k <= K1; k += 32) {
    o[k * T] = (k > 0 && uncertain && (bits[(b * K1 + k - 1) * T + t] & 1)) ? i2 : i1;
  }
}

std::tuple<at::Tensor, at::Tensor> ctc_viterbi_align_cuda(const at::Tensor& log_probs,
                                                          const at::Tensor& input_lengths,
                                                          const at::Tensor& targets,
                                                          const at::Tensor& target_lengths,
                                                          int64_t blank) {
  check_viterbi_inputs(log_probs, input_lengths, targets, target_lengths, blank);
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const int64_t B = log_probs.size(0), T = log_probs.size(1), V = log_probs.size(2);
  const int64_t Umax = targets.size(1);
  const int64_t Smax = 2 * Umax + 1;
  at::Tensor alignment = at::full({B, T}, -1, targets.options());
  at::Tensor scores = at::empty({B}, log_probs.options());
  if (B == 0) return {alignment, scores};
  at::Tensor alpha_ws = at::empty({B, 2 * (Smax + 2)}, log_probs.options());
  at::Tensor bp_ws = at::empty({B, T, Smax}, targets.options().dtype(at::kByte));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  viterbi_kernel<<<static_cast<unsigned>(B), kViterbiThreads, 0, stream>>>(
      log_probs.data_ptr<float>(), input_lengths.data_ptr<int64_t>(), targets.data_ptr<int64_t>(),
      target_lengths.data_ptr<int64_t>(), T, V, Umax, blank, Smax, alpha_ws.data_ptr<float>(),
      bp_ws.data_ptr<uint8_t>(), alignment.data_ptr<int64_t>(), scores.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {alignment, scores};
}

at::Tensor sample_alignments_cuda(const at::Tensor& log_probs, const at::Tensor& input_lengths,
                                  const at::Tensor& rand_bits, double log_threshold) {
  check_sample_inputs(log_probs, input_lengths, rand_bits);
  const c10::cuda::CUDAGuard guard(log_probs.device());
  const int64_t B = log_probs.size(0), T = log_probs.size(1), V = log_probs.size(2);
  const int64_t K1 = rand_bits.size(1);
  at::Tensor samples = at::full({B, K1 + 1, T}, -1, input_lengths.options());
  if (B * T == 0) return samples;
  const int64_t blocks = (B * T + kSampleWarps - 1) / kSampleWarps;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  sample_kernel<<<static_cast<unsigned>(blocks), kSampleWarps * 32, 0, stream>>>(
      log_probs.data_ptr<float>(), input_lengths.data_ptr<int64_t>(),
      rand_bits.data_ptr<uint8_t>(), B, T, V, K1, log_threshold, samples.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return samples;
}

}  // namespace

TORCH_LIBRARY_IMPL(casnat, CUDA, m) {
  m.impl("ctc_viterbi_align", &ctc_viterbi_align_cuda);
  m.impl("sample_alignments", &sample_alignments_cuda);
}

}  // namespace casnat
