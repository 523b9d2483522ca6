// Vector kernels for the observers' threshold searches, compiled for AVX2 with a function-level
// target attribute (the rest of the package stays baseline x86-64). Callers check that AVX2 is
// usable (CPUID and XCR0: ShardTensor's ProcessorFeatures) before calling; on other architectures
// the functions exist but report that they cannot run.
#ifndef SHARDQUANT_SEARCH_KERNELS_H
#define SHARDQUANT_SEARCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this build contains the AVX2 kernels (x86-64), 0 otherwise.
int shardquant_search_kernels_available(void);

/// Σ over i < count of the fixed-point grid integer of (x[i] − dq(x[i]))², where
///   level = roundTiesToEven(clamp(x · inverse · quant_maximum, −quant_maximum − 1, quant_maximum)),
///   dq = level · reciprocal_maximum · threshold (all float32, left to right, no fused operations),
/// and the grid integer of a term t is the low bits of (t · grid_scale + 2⁵²) (t squared in double,
/// exact). Every term must be below 2⁴⁰ on the grid and count at most 2²²: the sum then fits an
/// int64. Bit for bit the scalar definition, whatever the count.
int64_t shardquant_squared_error_sum_avx2(const float *x, size_t count, float inverse, float threshold,
                                          float quant_maximum, float reciprocal_maximum, double grid_scale);

/// The asymmetric form: level = clamp(roundTiesToEven(x / step) + zero, qmin, qmax),
/// dq = (level − zero) · step, same grid integers and bounds as above.
int64_t shardquant_asymmetric_squared_error_sum_avx2(const float *x, size_t count, float step, float zero,
                                                     float quant_minimum, float quant_maximum, double grid_scale);

/// NumPy's uniform-bin histogram of float32 values (see ShardQuant's UniformHistogram.binCounts):
/// with F = edges[0] and L = edges[bins], for each x with F <= x <= L (NaN never is),
///   index = clamp(truncate((x − F) · bins_per_unit), 0, bins), bins → bins − 1,
///   index −= 1 when x < edges[index]; index += 1 when index != bins − 1 and x >= edges[index + 1],
/// and counts[index] += 1, in float32 as the scalar definition computes it. `edges` holds the
/// bins + 1 edges float(i · step + first) (i < bins, in double) and L; `counts` holds bins int64
/// counters, added to (not cleared). With `absolute` non-zero the values binned are |x[i]|.
void shardquant_histogram_counts_avx2(const float *x, size_t count, int absolute, double first, double step, float bins_per_unit,
                                      const float *edges, int32_t bins, int64_t *counts);

#endif
