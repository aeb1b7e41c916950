/* What the kernels share: scratch that grows, 8 float lanes (AVX2 + FMA registers, or the same arithmetic lane
 * by lane in plain C: the same bits either way) and exp for x <= 0 in plain C (the same in a
 * vector lane and a scalar tail). */
#ifndef PARAREASON_VEC8_H
#define PARAREASON_VEC8_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Grow *buf (of *have elements of `size` bytes) to hold `need`: 0, or -1 without memory
 * (the old buffer kept). */
static inline int vec_grow(void** buf, size_t* have, size_t need, size_t size) {
  if (need <= *have) return 0;
  void* p = realloc(*buf, need * size);
  if (!p) return -1;
  *buf = p;
  *have = need;
  return 0;
}

/* 8 float lanes: AVX2 + FMA registers, or the same arithmetic lane by lane in plain C. */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 att_v;
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#else
typedef struct { float x[8]; } att_v;
static inline att_v V_ZERO(void) { att_v r = {{0}}; return r; }
static inline att_v V_LOAD(const float* p) { att_v r; memcpy(r.x, p, sizeof r.x); return r; }
static inline void V_STORE(float* p, att_v v) { memcpy(p, v.x, sizeof v.x); }
static inline att_v V_SET1(float x) { att_v r; for (int l = 0; l < 8; l++) r.x[l] = x; return r; }
static inline att_v V_FMA(att_v a, att_v b, att_v c) { for (int l = 0; l < 8; l++) c.x[l] = fmaf(a.x[l], b.x[l], c.x[l]); return c; }
static inline att_v V_MUL(att_v a, att_v b) { for (int l = 0; l < 8; l++) a.x[l] *= b.x[l]; return a; }
static inline att_v V_ADD(att_v a, att_v b) { for (int l = 0; l < 8; l++) a.x[l] += b.x[l]; return a; }
static inline att_v V_MAX(att_v a, att_v b) { for (int l = 0; l < 8; l++) a.x[l] = a.x[l] > b.x[l] ? a.x[l] : b.x[l]; return a; }  /* maxps */
#endif

/* exp(x) for x <= 0 (a score minus the row's maximum), Cephes' expf polynomial: within
 * 1.4 ulp; below -87 it returns 0 (exp(-87) is 1.6e-38: no softmax sum can notice it). */
static inline float vec_exp_nonpos(float x) {
  float in = x;
  x = x < -87.0f ? -87.0f : x;
  /* n = round(x / ln 2) by adding 1.5 * 2^23, which also leaves n in the low mantissa bits:
   * no floorf or float-to-int conversion, which the vectoriser refuses while they may trap */
  float shifted = fmaf(x, 1.44269504088896341f, 12582912.0f);
  float n = shifted - 12582912.0f;
  float r = fmaf(n, -0.693359375f, x);
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  p = fmaf(p, r * r, r) + 1.0f;
  int32_t bits;
  memcpy(&bits, &shifted, sizeof bits);
  bits = (bits - 0x4B400000 + 127) << 23;
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  return in < -87.0f ? 0.0f : p * two_n;  /* -inf (a masked token) gives 0 */
}

#endif
