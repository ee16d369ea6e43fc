// Schemas of the casnat alignment ops, declared once for every device.
//
// casnat::ctc_viterbi_align(log_probs (B,T,V) f32, input_lengths (B,) i64, targets (B,U) i64,
//                           target_lengths (B,) i64, blank) -> (alignment (B,T) i64, scores (B,) f32)
//   Best CTC path forced to each target (max-product over the blank-extended labels); -1 on padding
//   frames; score -inf and alignment all -1 where no valid path exists. Tie rule: see ctc_align.h.
// casnat::sample_alignments(log_probs (B,T,V) f32, input_lengths (B,) i64, rand_bits (B,K-1,T) u8,
//                           log_threshold) -> samples (B,K,T) i64
//   Sample 0 is the argmax path; in sample k >= 1 a frame whose top log-prob is below log_threshold
//   takes its top-1 label if rand_bits[b,k-1,t] is even, else its top-2 label. The random bits come
//   from the caller (a torch.Generator) so every backend returns the same samples.
//
// Kernels: cpu/ctc_align_cpu.cpp (OpenMP over the batch) and cuda/ctc_align_cuda.cu.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing casnat._C loads this library, which runs the TORCH_LIBRARY registrations below. The
// module itself is empty, so the extension can use the limited (abi3) Python API.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr,
                                          nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(casnat, m) {
  m.def(
      "ctc_viterbi_align(Tensor log_probs, Tensor input_lengths, Tensor targets, "
      "Tensor target_lengths, int blank) -> (Tensor, Tensor)");
  m.def(
      "sample_alignments(Tensor log_probs, Tensor input_lengths, Tensor rand_bits, "
      "float log_threshold) -> Tensor");
}
