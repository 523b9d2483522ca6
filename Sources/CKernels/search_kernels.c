// AVX2 forms of the observers' squared-error searches (see include/search_kernels.h). Written with
// intrinsics so every operation is the one the scalar definition performs, in the same order: no
// contraction into fused multiply-adds, no reassociation. The integer sums are exact, so the
// result does not depend on the vector width.
#include "search_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
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

#else

int shardquant_search_kernels_available(void) { return 0; }

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
