// Kernels of the activations on the decoder's hot path (the softmax of attention rows, SwiGLU),
// each in two forms that give the same floats bit for bit: an AVX2 form (function-level target
// attribute; callers check the processor first) and a scalar form that runs anywhere. Both
// evaluate the exponential with the same float32 operations in the same order (no fused
// multiply-adds, no reassociation), and sum in the same eight lanes.
#ifndef SHARDQUANT_ACTIVATION_KERNELS_H
#define SHARDQUANT_ACTIVATION_KERNELS_H

#include <stddef.h>

/// 1 when this build contains the AVX2 forms (x86-64), 0 otherwise.
int shardquant_activation_kernels_available(void);

/// e^x in float32 (Cephes' expf: n = round(x·log₂e), r = x − n·C₁ − n·C₂, a degree-5 polynomial,
/// then ·2ⁿ), within 2 ulp of the exact value for −87.33 ≤ x ≤ 88.72; 0 below that range
/// (where e^x is under FLT_MIN: no subnormals) and +∞ above it. NaN gives NaN.
float shardquant_exp_scalar(float x);

/// The softmax of one row over its first `kept` entries, `kept` ≥ 1:
///   m = max_i x[i];  e_i = exp(x[i] − m) (as shardquant_exp_scalar);
///   s_l = Σ over i ≡ l (mod 8) of e_i, added in order of i, for the 8 lanes l;
///   total = ((s₀ + s₁) + (s₂ + s₃)) + ((s₄ + s₅) + (s₆ + s₇));  y[i] = e_i · (1 / total).
/// `y` may be `x`.
void shardquant_softmax_row_scalar(const float *x, float *y, size_t kept);
void shardquant_softmax_row_avx2(const float *x, float *y, size_t kept);

/// SwiGLU, element by element: product[i] = (gate[i] / (1 + exp(−gate[i]))) · product[i] (the
/// up projection in, the result out), exp as shardquant_exp_scalar.
void shardquant_swiglu_scalar(const float *gate, float *product, size_t count);
void shardquant_swiglu_avx2(const float *gate, float *product, size_t count);

/// Σ over i < count of exp(x[i] − m) (exp as shardquant_exp_scalar, the difference in float32),
/// each term widened to double and added in 8 lanes (lane l: the terms i ≡ l mod 8, in order of i),
/// total = ((s₀ + s₁) + (s₂ + s₃)) + ((s₄ + s₅) + (s₆ + s₇)) in double: a cross entropy's
/// normaliser.
double shardquant_exp_sum_scalar(const float *x, size_t count, float m);
double shardquant_exp_sum_avx2(const float *x, size_t count, float m);

#endif
