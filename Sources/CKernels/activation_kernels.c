// The softmax and SwiGLU kernels of include/activation_kernels.h. Every vector operation is the
// one the scalar form performs, lane by lane, in the same order: no contraction into fused
// multiply-adds, no reassociation, so the two forms agree bit for bit.
#include "activation_kernels.h"

#include <math.h>
#include <string.h>

#pragma clang fp contract(off)

// Cephes' expf: log₂e, ln 2 in two parts (C₁ exact in few bits), and the polynomial of e^r − 1 − r
// over r², for |r| ≤ ln 2 / 2.
static const float log2e = 1.44269504088896341f;
static const float lnTwoHigh = 0.693359375f;
static const float lnTwoLow = -2.12194440e-4f;
static const float p0 = 1.9875691500e-4f, p1 = 1.3981999507e-3f, p2 = 8.3334519073e-3f;
static const float p3 = 4.1665795894e-2f, p4 = 1.6666665459e-1f, p5 = 5.0000001201e-1f;
// Below: e^x < FLT_MIN (0 is returned). Above: 2ⁿ would need n = 128 (+∞ is returned).
static const float lowest = -87.33654475f;
static const float highest = 88.0f;

float shardquant_exp_scalar(float x) {
    if (x != x) return x;
    if (x < lowest) return 0.0f;
    if (x > highest) return INFINITY;
    float n = nearbyintf(x * log2e);
    float r = x - n * lnTwoHigh;
    r = r - n * lnTwoLow;
    float square = r * r;
    float p = p0;
    p = p * r + p1;
    p = p * r + p2;
    p = p * r + p3;
    p = p * r + p4;
    p = p * r + p5;
    p = p * square;
    p = p + r;
    p = p + 1.0f;
    int exponent = (int)n + 127;
    unsigned int bits = (unsigned int)exponent << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

void shardquant_softmax_row_scalar(const float *x, float *y, size_t kept) {
    float largest = -INFINITY;
    for (size_t i = 0; i < kept; i++) largest = largest > x[i] ? largest : x[i];
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < kept; i++) {
        float e = shardquant_exp_scalar(x[i] - largest);
        y[i] = e;
        lanes[i % 8] += e;
    }
    float total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    float inverse = 1.0f / total;
    for (size_t i = 0; i < kept; i++) y[i] *= inverse;
}

void shardquant_swiglu_scalar(const float *gate, float *product, size_t count) {
    for (size_t i = 0; i < count; i++) {
        float g = gate[i];
        float denominator = 1.0f + shardquant_exp_scalar(-g);
        product[i] = (g / denominator) * product[i];
    }
}

double shardquant_exp_sum_scalar(const float *x, size_t count, float m) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < count; i++) lanes[i % 8] += (double)shardquant_exp_scalar(x[i] - m);
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

#if defined(__x86_64__)
#include <immintrin.h>

int shardquant_activation_kernels_available(void) { return 1; }

/// Eight shardquant_exp_scalar lanes: the same clamps, rounding, operations and scale.
__attribute__((target("avx2")))
static inline __m256 exp8(__m256 x) {
    const __m256 vLowest = _mm256_set1_ps(lowest), vHighest = _mm256_set1_ps(highest);
    __m256 below = _mm256_cmp_ps(x, vLowest, _CMP_LT_OQ);
    __m256 above = _mm256_cmp_ps(x, vHighest, _CMP_GT_OQ);
    // maxps/minps return their second operand for NaN, so a NaN lane stays NaN.
    __m256 clamped = _mm256_min_ps(vHighest, _mm256_max_ps(vLowest, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(log2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(clamped, _mm256_mul_ps(n, _mm256_set1_ps(lnTwoHigh)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(lnTwoLow)));
    __m256 square = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(p0);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(p1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(p2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(p3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(p4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(p5));
    p = _mm256_mul_ps(p, square);
    p = _mm256_add_ps(p, r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    // n is a whole number in [−126, 127] here (NaN lanes give some scale; p is NaN there).
    __m256i exponent = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(exponent, 23));
    __m256 result = _mm256_mul_ps(p, scale);
    result = _mm256_andnot_ps(below, result);
    return _mm256_blendv_ps(result, _mm256_set1_ps(INFINITY), above);
}

/// The lanes of `count` < 8 values from `x`, zeros after them.
__attribute__((target("avx2")))
static inline __m256 load_partial(const float *x, size_t count, float fill) {
    float lanes[8] = {fill, fill, fill, fill, fill, fill, fill, fill};
    memcpy(lanes, x, count * sizeof(float));
    return _mm256_loadu_ps(lanes);
}

__attribute__((target("avx2")))
static inline void store_partial(float *y, __m256 value, size_t count) {
    float lanes[8];
    _mm256_storeu_ps(lanes, value);
    memcpy(y, lanes, count * sizeof(float));
}

__attribute__((target("avx2")))
void shardquant_softmax_row_avx2(const float *x, float *y, size_t kept) {
    __m256 largest8 = _mm256_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= kept; i += 8) largest8 = _mm256_max_ps(largest8, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, largest8);
    float largest = -INFINITY;
    for (int l = 0; l < 8; l++) largest = largest > lanes[l] ? largest : lanes[l];
    for (; i < kept; i++) largest = largest > x[i] ? largest : x[i];

    const __m256 m = _mm256_set1_ps(largest);
    __m256 sums = _mm256_setzero_ps();
    for (i = 0; i + 8 <= kept; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(y + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    if (i < kept) {
        // The tail's missing lanes are −∞: e = 0, and adding +0 leaves a lane's sum as it is.
        __m256 e = exp8(_mm256_sub_ps(load_partial(x + i, kept - i, -INFINITY), m));
        store_partial(y + i, e, kept - i);
        sums = _mm256_add_ps(sums, e);
    }
    _mm256_storeu_ps(lanes, sums);
    float total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    const __m256 inverse = _mm256_set1_ps(1.0f / total);
    for (i = 0; i + 8 <= kept; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inverse));
    float scalarInverse = 1.0f / total;
    for (; i < kept; i++) y[i] *= scalarInverse;
}

__attribute__((target("avx2")))
void shardquant_swiglu_avx2(const float *gate, float *product, size_t count) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        // −g by its sign bit, as the scalar form's negation.
        __m256 denominator = _mm256_add_ps(one, exp8(_mm256_xor_ps(g, sign)));
        _mm256_storeu_ps(product + i, _mm256_mul_ps(_mm256_div_ps(g, denominator), _mm256_loadu_ps(product + i)));
    }
    if (i < count) shardquant_swiglu_scalar(gate + i, product + i, count - i);
}

__attribute__((target("avx2")))
double shardquant_exp_sum_avx2(const float *x, size_t count, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();  // lanes 0–3 and 4–7
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[8];
    _mm256_storeu_pd(lanes, low);
    _mm256_storeu_pd(lanes + 4, high);
    // The tail's terms go to lanes 0, 1, … in order, as in the scalar form.
    for (size_t l = 0; i < count; i++, l++) lanes[l] += (double)shardquant_exp_scalar(x[i] - m);
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

#else

int shardquant_activation_kernels_available(void) { return 0; }
double shardquant_exp_sum_avx2(const float *x, size_t count, float m) { return shardquant_exp_sum_scalar(x, count, m); }
void shardquant_softmax_row_avx2(const float *x, float *y, size_t kept) { shardquant_softmax_row_scalar(x, y, kept); }
void shardquant_swiglu_avx2(const float *gate, float *product, size_t count) { shardquant_swiglu_scalar(gate, product, count); }

#endif
