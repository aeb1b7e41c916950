/* y = x @ W^T + b with int8 weights (one scale per output row) and int8 activations
 * (one scale per row and block of 32 inputs, as llama.cpp's Q8_0), int32 dot products.
 *
 * Weights are packed by groups of 16 outputs: for group g and inputs 4i..4i+3, 64 bytes,
 * lane j holding w[16g + j][4i..4i+3] + 128 as unsigned bytes (vpdpbusd multiplies
 * unsigned by signed bytes). The +128 is taken back per block with the block's sum of
 * activation codes: sum_k (w + 128) q = sum_k w q + 128 sum_k q.
 *
 * AVX2 without VNNI (llama.cpp's trick): vpmaddubsw multiplies |w| (unsigned) by x with w's
 * sign, adding pairs in int16: at most 2 * 127 * 127, no saturation, exact int32 block sums.
 *
 * Every path does the same integer sums and the same float operations in the same order
 * (fmaf per block, then scale, then bias), so they agree bitwise, and a row's output does
 * not depend on the other rows of the call.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spin_pool.h"
#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define Q8_VNNI 1
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define Q8_AVX2 1 /* no vpdpbusd: vpmaddubsw on |w| and sign(w) * x, which cannot saturate */
#endif

#define BLOCK 32
#define LANES 16
#define NG 4      /* groups of 16 outputs per tile: packed N is padded to 64 */
#define MAX_MS 3  /* rows per tile: 4 x 3 int + 4 x 3 float accumulators + 4 weight vectors
                   (AVX2, a group at a time: 3 rows measured faster than 4 or 6) */

#include "q8_quantize.h"

/* AVX2: one block of a group's weights into cache, the next tile's while this one computes. */
#define Q8_PREFETCH(p) for (int c_ = 0; c_ < BLOCK * LANES; c_ += 64) __builtin_prefetch((p) + c_, 0, 3)

/* One tile of NG groups (64 outputs) for rows m0..m0+MS-1. MS is a constant at each call
 * site, so the accumulators stay in registers: NG*MS int32 and NG*MS float vectors.
 * next: the tile this thread takes next (NULL: none, or not this pass); the AVX2 path
 * fetches it block by block (16 rows: 96 vs 112 ms a step's linears; no gain on VNNI). */
static inline __attribute__((always_inline)) void tile_rows(
    const uint8_t* wt, const float* ws, const float* bias, const int8_t* q, const float* s,
    const int32_t* sq, float* y, int m0, const int MS, int n0, int N, int K, const uint8_t* next) {
  int nb = K / BLOCK;
  size_t group_bytes = (size_t)K * LANES;
#ifdef Q8_VNNI
  __m512 facc[NG][MAX_MS];
  for (int g = 0; g < NG; g++)
    for (int j = 0; j < MS; j++) facc[g][j] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    __m512i iacc[NG][MAX_MS];
    for (int j = 0; j < MS; j++) {
      __m512i init = _mm512_set1_epi32(-128 * sq[(size_t)(m0 + j) * nb + b]);
      for (int g = 0; g < NG; g++) iacc[g][j] = init;
    }
    for (int i = 0; i < BLOCK / 4; i++) {
      size_t off = (size_t)b * BLOCK * LANES + i * 64;
      __m512i w[NG];
      for (int g = 0; g < NG; g++) w[g] = _mm512_loadu_si512((const void*)(wt + g * group_bytes + off));
      for (int j = 0; j < MS; j++) {
        int32_t xq;
        memcpy(&xq, q + (size_t)(m0 + j) * K + b * BLOCK + 4 * i, 4);
        __m512i xv = _mm512_set1_epi32(xq);
        for (int g = 0; g < NG; g++) iacc[g][j] = _mm512_dpbusd_epi32(iacc[g][j], w[g], xv);
      }
    }
    for (int j = 0; j < MS; j++) {
      __m512 sb = _mm512_set1_ps(s[(size_t)(m0 + j) * nb + b]);
      for (int g = 0; g < NG; g++) facc[g][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[g][j]), sb, facc[g][j]);
    }
  }
  for (int g = 0; g < NG; g++) {
    int n = n0 + g * LANES;
    if (n >= N) break;
    int lanes = N - n < LANES ? N - n : LANES;
    __mmask16 mask = (__mmask16)((1u << lanes) - 1u);
    __m512 scale = _mm512_maskz_loadu_ps(mask, ws + n);
    __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + n) : _mm512_setzero_ps();
    for (int j = 0; j < MS; j++) {
      __m512 out = _mm512_mul_ps(facc[g][j], scale);
      if (bias) out = _mm512_add_ps(out, bv);
      _mm512_mask_storeu_ps(y + (size_t)(m0 + j) * N + n, mask, out);
    }
  }
#elif defined(Q8_AVX2)
  /* A group of 16 outputs at a time (16 ymm registers), its MS rows at once: w, |w| once. */
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
  for (int g = 0; g < NG; g++) {
    int n = n0 + g * LANES;
    if (n >= N) break;
    const uint8_t* wg = wt + g * group_bytes;
    __m256 f[MAX_MS][2];
    for (int j = 0; j < MS; j++) f[j][0] = f[j][1] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
      __m256i acc[MAX_MS][2];
      for (int j = 0; j < MS; j++) acc[j][0] = acc[j][1] = _mm256_setzero_si256();
      const uint8_t* wb = wg + (size_t)b * BLOCK * LANES;
      if (next) Q8_PREFETCH(next + g * group_bytes + (size_t)b * BLOCK * LANES);
      for (int i = 0; i < BLOCK / 4; i++) {
        __m256i w[2], aw[2];  /* lanes 8h..8h+7: 32 of the vector's 64 bytes */
        for (int h = 0; h < 2; h++) {
          w[h] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i*)(wb + i * 64 + 32 * h)), flip);
          aw[h] = _mm256_sign_epi8(w[h], w[h]);
        }
        for (int j = 0; j < MS; j++) {
          int32_t xq;
          memcpy(&xq, q + (size_t)(m0 + j) * K + b * BLOCK + 4 * i, 4);
          __m256i xv = _mm256_set1_epi32(xq);
          for (int h = 0; h < 2; h++) {
            __m256i pairs = _mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(xv, w[h]));
            acc[j][h] = _mm256_add_epi32(acc[j][h], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
      for (int j = 0; j < MS; j++) {
        __m256 sb = _mm256_set1_ps(s[(size_t)(m0 + j) * nb + b]);
        for (int h = 0; h < 2; h++) f[j][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[j][h]), sb, f[j][h]);
      }
    }
    int lanes = N - n < LANES ? N - n : LANES;
    for (int j = 0; j < MS; j++) {
      float out[LANES];
      _mm256_storeu_ps(out, f[j][0]);
      _mm256_storeu_ps(out + 8, f[j][1]);
      for (int l = 0; l < lanes; l++) {
        float o = out[l] * ws[n + l];
        if (bias) o = o + bias[n + l];
        y[(size_t)(m0 + j) * N + n + l] = o;
      }
    }
  }
#else
  for (int j = 0; j < MS; j++) {
    const int8_t* qr = q + (size_t)(m0 + j) * K;
    for (int g = 0; g < NG; g++) {
      int n = n0 + g * LANES;
      if (n >= N) break;
      const uint8_t* wg = wt + g * group_bytes;
      float facc[LANES] = {0};
      for (int b = 0; b < nb; b++) {
        int32_t iacc[LANES];
        for (int l = 0; l < LANES; l++) iacc[l] = -128 * sq[(size_t)(m0 + j) * nb + b];
        const uint8_t* wb = wg + (size_t)b * BLOCK * LANES;
        for (int i = 0; i < BLOCK / 4; i++)
          for (int l = 0; l < LANES; l++)
            for (int t = 0; t < 4; t++)
              iacc[l] += (int32_t)wb[i * 64 + l * 4 + t] * (int32_t)qr[b * BLOCK + 4 * i + t];
        float sb = s[(size_t)(m0 + j) * nb + b];
        for (int l = 0; l < LANES; l++) facc[l] = fmaf((float)iacc[l], sb, facc[l]);
      }
      int lanes = N - n < LANES ? N - n : LANES;
      for (int l = 0; l < lanes; l++) {
        float out = facc[l] * ws[n + l];
        if (bias) out = out + bias[n + l];
        y[(size_t)(m0 + j) * N + n + l] = out;
      }
    }
  }
#endif
}

typedef struct {
  const uint8_t* w;
  const float *ws, *bias;
  const int8_t* q;
  const float* s;
  const int32_t* sq;
  float* y;
  int M, N, K;
} linear_job;

static void linear_tiles(void* arg, int t_begin, int t_end) {
  const linear_job* j = (const linear_job*)arg;
  size_t tile_bytes = (size_t)j->K * LANES * NG;
  for (int t = t_begin; t < t_end; t++) {
    const uint8_t* wt = j->w + t * tile_bytes;
    int n0 = t * NG * LANES, m0 = 0;
    /* prefetched on the first of several passes (one pass: the hardware's stream is as fast) */
    const uint8_t* next = j->M > MAX_MS && t + 1 < t_end ? wt + tile_bytes : NULL;
    for (; m0 + MAX_MS <= j->M; m0 += MAX_MS, next = NULL)
      tile_rows(wt, j->ws, j->bias, j->q, j->s, j->sq, j->y, m0, MAX_MS, n0, j->N, j->K, next);
    int rest = j->M - m0;  /* each height a constant: its accumulators stay in registers */
    if (rest == 2) tile_rows(wt, j->ws, j->bias, j->q, j->s, j->sq, j->y, m0, 2, n0, j->N, j->K, next);
    if (rest == 1) tile_rows(wt, j->ws, j->bias, j->q, j->s, j->sq, j->y, m0, 1, n0, j->N, j->K, next);
  }
}

/* The caller thread's quantized activations, kept between calls (one set per caller thread). */
static __thread struct {
  size_t codes, blocks;
  int8_t* q;
  float* s;
  int32_t* sq;
} scratch;

static int reserve(int M, int Kp) {
  size_t codes = (size_t)M * Kp, blocks = codes / BLOCK;
  if (codes > scratch.codes) {
    int8_t* q = realloc(scratch.q, codes);
    if (!q) return -1;
    scratch.q = q;
    scratch.codes = codes;
  }
  if (blocks > scratch.blocks) {
    float* s = realloc(scratch.s, blocks * sizeof(float));
    if (s) scratch.s = s;
    int32_t* sq = realloc(scratch.sq, blocks * sizeof(int32_t));
    if (sq) scratch.sq = sq;
    if (!s || !sq) return -1;
    scratch.blocks = blocks;
  }
  return 0;
}

/* y [M, N] = op(x) @ W^T + bias. x [M, K] rows (op Q8_SWIGLU: [M, 2K]), contiguous; K pads
 * to Kp (a multiple of 32) with zeros. w: packed [ceil(N/64) * 4, Kp/4, 16, 4] bytes; ws [N]
 * weight scales; bias [N] or NULL; tiles of 64 outputs spread over `threads`, whose idle
 * ones then prefetch `ahead_bytes` of `ahead` (the next layer's weights, or NULL).
 * Returns 0, or -1 when the scratch buffers cannot be allocated. */
int q8_forward(const uint8_t* w, const float* ws, const float* bias, const float* x, int M, int K,
               int Kp, int op, const float* norm_w, float eps, float* y, int N, int threads,
               const void* ahead, long ahead_bytes) {
  if (reserve(M, Kp)) return -1;
  quantize_job qj = {x, op == Q8_SWIGLU ? 2 * K : K, K, Kp, op, norm_w, eps, scratch.q, scratch.s, scratch.sq};
  pool_run(quantize_range, &qj, M, M >= 16 ? threads : 1, NULL, 0);  /* a few rows: not worth a hand-off */
  linear_job lj = {w, ws, bias, scratch.q, scratch.s, scratch.sq, y, M, N, Kp};
  pool_run(linear_tiles, &lj, (N + NG * LANES - 1) / (NG * LANES), threads, ahead,
           ahead_bytes > 0 ? (size_t)ahead_bytes : 0);
  return 0;
}

/* How long (ns) an idle worker polls for the next call before it sleeps. */
void q8_set_spin_ns(long ns) { atomic_store(&pool.spin_ns, ns); }

/* The vector path compiled in: 2 AVX-512 VNNI, 1 AVX2, 0 plain C. */
int q8_vector_path(void) {
#if defined(Q8_VNNI)
  return 2;
#elif defined(Q8_AVX2)
  return 1;
#endif
  return 0;
}
