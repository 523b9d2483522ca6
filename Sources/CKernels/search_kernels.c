// AVX2 forms of the observers' squared-error searches (see include/search_kernels.h). Written with
// intrinsics so every operation is the one the scalar definition performs, in the same order: no
// contraction into fused multiply-adds, no reassociation. The integer sums are exact, so the
// result does not depend on the vector width.
#include "search_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#pragma clang fp contract(off)

int shardquant_search_kernels_available(void) { return 1; }

/// The bits of t · scale + 2⁵² summed lane-wise into `accumulator` (the 2⁵² bias is removed once
/// at the end: Σ bits − count · bits(2⁵²), in wrapping int64 arithmetic).
__attribute__((target("avx2")))
static inline __m256i add_grid_integers(__m256i accumulator, __m128 error, __m256d scale) {
    const __m256d bias = _mm256_set1_pd(0x1p52);
    __m256d wide = _mm256_cvtps_pd(error);
    __m256d term = _mm256_mul_pd(wide, wide);
    __m256d shifted = _mm256_add_pd(_mm256_mul_pd(term, scale), bias);
    return _mm256_add_epi64(accumulator, _mm256_castpd_si256(shifted));
}

__attribute__((target("avx2")))
static inline int64_t finish(__m256i accumulator, int64_t tail, size_t count) {
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, accumulator);
    double bias = 0x1p52;
    int64_t biasBits;
    memcpy(&biasBits, &bias, sizeof biasBits);
    uint64_t total = (uint64_t)lanes[0] + (uint64_t)lanes[1] + (uint64_t)lanes[2] + (uint64_t)lanes[3] + (uint64_t)tail;
    total -= (uint64_t)count * (uint64_t)biasBits;
    return (int64_t)total;
}

/// One scalar term, exactly as the vector lanes compute it (the tail of a block).
static inline int64_t grid_integer(float error, double scale) {
    double wide = (double)error;
    double shifted = wide * wide * scale + 0x1p52;
    int64_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return bits;
}

__attribute__((target("avx2")))
int64_t shardquant_squared_error_sum_avx2(const float *x, size_t count, float inverse, float threshold,
                                          float quant_maximum, float reciprocal_maximum, double grid_scale) {
    const __m256 vInverse = _mm256_set1_ps(inverse), vThreshold = _mm256_set1_ps(threshold);
    const __m256 vMaximum = _mm256_set1_ps(quant_maximum), vMinimum = _mm256_set1_ps(-quant_maximum - 1);
    const __m256 vReciprocal = _mm256_set1_ps(reciprocal_maximum);
    const __m256d vScale = _mm256_set1_pd(grid_scale);
    __m256i first = _mm256_setzero_si256(), second = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 value = _mm256_loadu_ps(x + i);
        __m256 scaled = _mm256_mul_ps(_mm256_mul_ps(value, vInverse), vMaximum);
        __m256 clamped = _mm256_min_ps(_mm256_max_ps(scaled, vMinimum), vMaximum);
        __m256 level = _mm256_round_ps(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 error = _mm256_sub_ps(value, _mm256_mul_ps(_mm256_mul_ps(level, vReciprocal), vThreshold));
        first = add_grid_integers(first, _mm256_castps256_ps128(error), vScale);
        second = add_grid_integers(second, _mm256_extractf128_ps(error, 1), vScale);
    }
    int64_t tail = 0;
    for (; i < count; i++) {
        float scaled = x[i] * inverse * quant_maximum;
        float clamped = scaled < -quant_maximum - 1 ? -quant_maximum - 1 : scaled;
        clamped = clamped > quant_maximum ? quant_maximum : clamped;
        float level = __builtin_rintf(clamped);  // ties to even: the default rounding mode
        tail += grid_integer(x[i] - level * reciprocal_maximum * threshold, grid_scale);
    }
    return finish(_mm256_add_epi64(first, second), tail, count);
}

__attribute__((target("avx2")))
int64_t shardquant_asymmetric_squared_error_sum_avx2(const float *x, size_t count, float step, float zero,
                                                     float quant_minimum, float quant_maximum, double grid_scale) {
    const __m256 vStep = _mm256_set1_ps(step), vZero = _mm256_set1_ps(zero);
    const __m256 vMaximum = _mm256_set1_ps(quant_maximum), vMinimum = _mm256_set1_ps(quant_minimum);
    const __m256d vScale = _mm256_set1_pd(grid_scale);
    __m256i first = _mm256_setzero_si256(), second = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 value = _mm256_loadu_ps(x + i);
        __m256 rounded = _mm256_round_ps(_mm256_div_ps(value, vStep), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 level = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(rounded, vZero), vMinimum), vMaximum);
        __m256 error = _mm256_sub_ps(value, _mm256_mul_ps(_mm256_sub_ps(level, vZero), vStep));
        first = add_grid_integers(first, _mm256_castps256_ps128(error), vScale);
        second = add_grid_integers(second, _mm256_extractf128_ps(error, 1), vScale);
    }
    int64_t tail = 0;
    for (; i < count; i++) {
        float quotient = x[i] / step;
        float rounded = __builtin_rintf(quotient);
        float level = rounded + zero;
        level = level < quant_minimum ? quant_minimum : level;
        level = level > quant_maximum ? quant_maximum : level;
        tail += grid_integer(x[i] - (level - zero) * step, grid_scale);
    }
    return finish(_mm256_add_epi64(first, second), tail, count);
}

/// The bin of one value, or −1 when it lies outside [first, last] (the scalar definition).
static inline int32_t histogram_index(float value, float first, float last, float bins_per_unit, const float *edges, int32_t bins) {
    if (!(value >= first && value <= last)) return -1;
    float position = (value - first) * bins_per_unit;
    int32_t index = (int32_t)position;
    if (index < 0) index = 0;
    if (index > bins) index = bins;
    if (index == bins) index -= 1;
    if (value < edges[index]) index -= 1;
    if (index != bins - 1 && value >= edges[index + 1]) index += 1;
    return index;
}

/// edges[index] for 8 indices in 0...bins, computed as the edges were: float(index · step + first)
/// in double (the products and sums the scalar code rounds), and `last` at `bins`. Arithmetic
/// instead of a gather, which is slow on many processors.
__attribute__((target("avx2")))
static inline __m256 edge_values(__m256i index, __m256d step, __m256d first, __m256i bins, __m256 last) {
    __m128 low = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(index)), step), first));
    __m128 high = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(index, 1)), step), first));
    __m256 value = _mm256_set_m128(high, low);
    return _mm256_blendv_ps(value, last, _mm256_castsi256_ps(_mm256_cmpeq_epi32(index, bins)));
}

/// Values per chunk: zeros are taken out of each chunk (into an L1-resident buffer) before binning.
enum { histogram_chunk = 4096 };

__attribute__((target("avx2")))
void shardquant_histogram_counts_avx2(const float *x, size_t count, int absolute, double first, double step, float bins_per_unit,
                                      const float *edges, int32_t bins, int64_t *counts) {
    const float firstFloat = edges[0], lastFloat = edges[bins];
    const __m256 vFirst = _mm256_set1_ps(firstFloat), vLast = _mm256_set1_ps(lastFloat), vScale = _mm256_set1_ps(bins_per_unit);
    const __m256d vStep = _mm256_set1_pd(step), vFirstExact = _mm256_set1_pd(first);
    const __m256i vZero = _mm256_setzero_si256(), vBins = _mm256_set1_epi32(bins), vLastBin = _mm256_set1_epi32(bins - 1);
    const __m256i vOne = _mm256_set1_epi32(1);
    // Four interleaved sub-histograms (one more slot each, `bins`, for values outside the range),
    // so runs of equal values do not chain every increment on the one before.
    size_t lanes = (size_t)bins + 1;
    int64_t *tallies = calloc(4 * lanes, sizeof(int64_t));
    if (tallies == NULL) {
        for (size_t i = 0; i < count; i++) {
            int32_t index = histogram_index(absolute ? fabsf(x[i]) : x[i], firstFloat, lastFloat, bins_per_unit, edges, bins);
            if (index >= 0) counts[index] += 1;
        }
        return;
    }
    // Zeros all fall in one bin (or none): counted, not binned. ReLU makes about half of an
    // activation zero.
    int64_t zeros = 0;
    float kept[histogram_chunk];
    int32_t indices[8];
    for (size_t chunk = 0; chunk < count; chunk += histogram_chunk) {
        size_t end = chunk + histogram_chunk < count ? chunk + histogram_chunk : count;
        size_t n = 0;
        if (absolute) {
            for (size_t i = chunk; i < end; i++) {
                kept[n] = fabsf(x[i]);
                n += x[i] != 0.0f;
            }
        } else {
            for (size_t i = chunk; i < end; i++) {
                kept[n] = x[i];
                n += x[i] != 0.0f;
            }
        }
        zeros += (int64_t)(end - chunk - n);
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 value = _mm256_loadu_ps(kept + i);
            // Ordered comparisons: false for NaN, so NaN is outside.
            __m256 inside = _mm256_and_ps(_mm256_cmp_ps(value, vFirst, _CMP_GE_OQ), _mm256_cmp_ps(value, vLast, _CMP_LE_OQ));
            __m256i index = _mm256_cvttps_epi32(_mm256_mul_ps(_mm256_sub_ps(value, vFirst), vScale));
            index = _mm256_min_epi32(_mm256_max_epi32(index, vZero), vBins);
            index = _mm256_sub_epi32(index, _mm256_and_si256(_mm256_cmpeq_epi32(index, vBins), vOne));
            // Lanes outside the range compute with index 0 (always a valid edge) and are dropped.
            index = _mm256_and_si256(index, _mm256_castps_si256(inside));
            __m256 lower = edge_values(index, vStep, vFirstExact, vBins, vLast);
            index = _mm256_sub_epi32(index, _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(value, lower, _CMP_LT_OQ)), vOne));
            __m256 upper = edge_values(_mm256_add_epi32(index, vOne), vStep, vFirstExact, vBins, vLast);
            __m256i notLast = _mm256_xor_si256(_mm256_cmpeq_epi32(index, vLastBin), _mm256_set1_epi32(-1));
            __m256i above = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(value, upper, _CMP_GE_OQ)), notLast);
            index = _mm256_add_epi32(index, _mm256_and_si256(above, vOne));
            index = _mm256_blendv_epi8(vBins, index, _mm256_castps_si256(inside));
            _mm256_storeu_si256((__m256i *)indices, index);
            tallies[indices[0]] += 1;
            tallies[lanes + indices[1]] += 1;
            tallies[2 * lanes + indices[2]] += 1;
            tallies[3 * lanes + indices[3]] += 1;
            tallies[indices[4]] += 1;
            tallies[lanes + indices[5]] += 1;
            tallies[2 * lanes + indices[6]] += 1;
            tallies[3 * lanes + indices[7]] += 1;
        }
        for (; i < n; i++) {
            int32_t index = histogram_index(kept[i], firstFloat, lastFloat, bins_per_unit, edges, bins);
            if (index >= 0) tallies[index] += 1;
        }
    }
    int32_t zeroBin = histogram_index(0.0f, firstFloat, lastFloat, bins_per_unit, edges, bins);
    if (zeroBin >= 0) tallies[zeroBin] += zeros;
    for (int32_t bin = 0; bin < bins; bin++) {
        counts[bin] += tallies[bin] + tallies[lanes + bin] + tallies[2 * lanes + bin] + tallies[3 * lanes + bin];
    }
    free(tallies);
}

#else

int shardquant_search_kernels_available(void) { return 0; }

void shardquant_histogram_counts_avx2(const float *x, size_t count, int absolute, double first, double step, float bins_per_unit,
                                      const float *edges, int32_t bins, int64_t *counts) {
    (void)x; (void)count; (void)absolute; (void)first; (void)step; (void)bins_per_unit; (void)edges; (void)bins; (void)counts;
}

int64_t shardquant_squared_error_sum_avx2(const float *x, size_t count, float inverse, float threshold,
                                          float quant_maximum, float reciprocal_maximum, double grid_scale) {
    (void)x; (void)count; (void)inverse; (void)threshold; (void)quant_maximum; (void)reciprocal_maximum; (void)grid_scale;
    return 0;
}

int64_t shardquant_asymmetric_squared_error_sum_avx2(const float *x, size_t count, float step, float zero,
                                                     float quant_minimum, float quant_maximum, double grid_scale) {
    (void)x; (void)count; (void)step; (void)zero; (void)quant_minimum; (void)quant_maximum; (void)grid_scale;
    return 0;
}

#endif
