// Shared declarations of the casnat alignment ops: argument checks used by every device's kernel.
//
// The schemas live in ctc_align.cpp; each device registers its kernels in its own file
// (cpu/ctc_align_cpu.cpp, cuda/ctc_align_cuda.cu) so the dispatcher picks the device.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>

namespace casnat {

// Tie rule shared by every backend (CPU, CUDA, numba):
//   per state, stay (s) beats previous (s-1) beats skip (s-2) when their scores are equal,
//   i.e. a move is taken only when it is strictly better than every lower-numbered move;
//   at the last frame the path ends in the last label (S-2) unless the trailing blank (S-1)
//   is strictly better.
// This is the rule torchaudio.functional.forced_align uses, so paths agree with it exactly.
constexpr uint8_t kStay = 0;
constexpr uint8_t kPrev = 1;
constexpr uint8_t kSkip = 2;

inline void check_viterbi_inputs(const at::Tensor& log_probs, const at::Tensor& input_lengths,
                                 const at::Tensor& targets, const at::Tensor& target_lengths,
                                 int64_t blank) {
  TORCH_CHECK(log_probs.dim() == 3, "ctc_viterbi_align: log_probs must be (B, T, V), got ",
              log_probs.sizes());
  TORCH_CHECK(log_probs.scalar_type() == at::kFloat,
              "ctc_viterbi_align: log_probs must be float32, got ", log_probs.scalar_type());
  TORCH_CHECK(log_probs.is_contiguous(), "ctc_viterbi_align: log_probs must be contiguous");
  const int64_t B = log_probs.size(0);
  TORCH_CHECK(input_lengths.dim() == 1 && input_lengths.size(0) == B,
              "ctc_viterbi_align: input_lengths must be (B,) = (", B, ",), got ",
              input_lengths.sizes());
  TORCH_CHECK(targets.dim() == 2 && targets.size(0) == B,
              "ctc_viterbi_align: targets must be (B, U) with B = ", B, ", got ", targets.sizes());
  TORCH_CHECK(target_lengths.dim() == 1 && target_lengths.size(0) == B,
              "ctc_viterbi_align: target_lengths must be (B,) = (", B, ",), got ",
              target_lengths.sizes());
  for (const at::Tensor* t : {&input_lengths, &targets, &target_lengths}) {
    TORCH_CHECK(t->scalar_type() == at::kLong && t->is_contiguous(),
                "ctc_viterbi_align: input_lengths, targets and target_lengths must be "
                "contiguous int64 tensors");
    TORCH_CHECK(t->device() == log_probs.device(),
                "ctc_viterbi_align: all tensors must be on ", log_probs.device(), ", got ",
                t->device());
  }
  TORCH_CHECK(log_probs.size(2) <= std::numeric_limits<int32_t>::max(),
              "ctc_viterbi_align: V = ", log_probs.size(2), " does not fit in int32");
  TORCH_CHECK(blank >= 0 && blank < log_probs.size(2), "ctc_viterbi_align: blank must be in [0, ",
              log_probs.size(2), "), got ", blank);
}

inline void check_sample_inputs(const at::Tensor& log_probs, const at::Tensor& input_lengths,
                                const at::Tensor& rand_bits) {
  TORCH_CHECK(log_probs.dim() == 3, "sample_alignments: log_probs must be (B, T, V), got ",
              log_probs.sizes());
  TORCH_CHECK(log_probs.scalar_type() == at::kFloat,
              "sample_alignments: log_probs must be float32, got ", log_probs.scalar_type());
  TORCH_CHECK(log_probs.is_contiguous(), "sample_alignments: log_probs must be contiguous");
  TORCH_CHECK(log_probs.size(2) >= 1, "sample_alignments: log_probs needs V >= 1");
  const int64_t B = log_probs.size(0);
  const int64_t T = log_probs.size(1);
  TORCH_CHECK(input_lengths.dim() == 1 && input_lengths.size(0) == B &&
                  input_lengths.scalar_type() == at::kLong && input_lengths.is_contiguous(),
              "sample_alignments: input_lengths must be contiguous int64 (B,) = (", B,
              ",), got ", input_lengths.sizes(), " ", input_lengths.scalar_type());
  TORCH_CHECK(rand_bits.dim() == 3 && rand_bits.size(0) == B && rand_bits.size(2) == T &&
                  rand_bits.scalar_type() == at::kByte && rand_bits.is_contiguous(),
              "sample_alignments: rand_bits must be contiguous uint8 (B, K-1, T) = (", B,
              ", K-1, ", T, "), got ", rand_bits.sizes(), " ", rand_bits.scalar_type());
  TORCH_CHECK(input_lengths.device() == log_probs.device() &&
                  rand_bits.device() == log_probs.device(),
              "sample_alignments: all tensors must be on ", log_probs.device());
}

}  // namespace casnat
