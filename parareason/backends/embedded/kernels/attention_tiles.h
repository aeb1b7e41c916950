/* decode_attention.c's inner loops: a query block's scores against keys, and a query's
 * weighted sum of values. Every sum is a chain of fmaf in key order (or over d in order), so
 * a key's score and a query's output do not depend on the lane, group or batch. */
#ifndef PARAREASON_ATTENTION_TILES_H
#define PARAREASON_ATTENTION_TILES_H

#include <stdint.h>
#include <string.h>

#include "vec8.h"

#define ATT_MAX_DIM 1024  /* the largest head_dim */

#define ATT_AHEAD 16  /* keys (or values) prefetched ahead of the one in use */

static inline void att_prefetch(const float* p, int D) {
  for (int d = 0; d < D; d += 16) __builtin_prefetch(p + d, 0, 3);
}

/* Scores of 8 keys against one block of 8 queries: lanes are queries (qt [D][8], transposed
 * once per item) and the 8 keys 8 independent chains (the FMA units stay busy). Each score
 * is one chain of fmaf over d in order: a key's score is the same in any group, lane or
 * batch. out [8 keys][8 lanes]. */
static inline __attribute__((always_inline)) void att_scores8(const float* restrict qt, const float* const* keys,
                                                              int D, att_v scale, float* restrict out) {
  att_v s[8];
  for (int k = 0; k < 8; k++) s[k] = V_ZERO();
  for (int d = 0; d < D; d++) {
    att_v q = V_LOAD(qt + d * 8);
    for (int k = 0; k < 8; k++) s[k] = V_FMA(q, V_SET1(keys[k][d]), s[k]);
  }
  for (int k = 0; k < 8; k++) V_STORE(out + k * 8, V_MUL(s[k], scale));
}

/* Scores of n keys (slots) for one block of 8 query lanes into sc[t][8], t from 0. */
static inline __attribute__((always_inline)) void att_block_scores(const float* qt, const float* pool,
                                                                   const float* v_pool, const int64_t* slots,
                                                                   int n, size_t stride, size_t off, int D,
                                                                   att_v scale, float* sc, int fetch) {
  float spare[64];
  for (int t0 = 0; t0 < n; t0 += 8) {
    /* the KV sits in memory, not cache (the matmuls between two layers stream ~20 MB): the
     * first block to read it (`fetch`) asks for the keys ahead, and for their values */
    for (int t = t0 + ATT_AHEAD; fetch && t < t0 + ATT_AHEAD + 8 && t < n; t++) {
      att_prefetch(pool + (size_t)slots[t] * stride + off, D);
      att_prefetch(v_pool + (size_t)slots[t] * stride + off, D);
    }
    const float* keys[8];
    for (int k = 0; k < 8; k++) keys[k] = pool + (size_t)slots[t0 + k < n ? t0 + k : n - 1] * stride + off;
    int whole = n - t0 >= 8;
    att_scores8(qt, keys, D, scale, whole ? sc + (size_t)t0 * 8 : spare);
    if (!whole) memcpy(sc + (size_t)t0 * 8, spare, (size_t)(n - t0) * 8 * sizeof(float));
  }
}

/* One query's weighted sum of values, key by key in order (prefix, then own), times inv
 * (the values were prefetched with the keys). */
static inline __attribute__((always_inline)) void att_values(const float* wb, int lane, const int64_t* pre, int P,
                                                             const int64_t* own, int kept, const float* pool,
                                                             size_t stride, size_t off, int D, float inv, float* o) {
#if defined(__AVX512F__)
  if (D % 16 == 0) {  /* 16 lanes of d at a time: the same fmaf per d, half the instructions */
    __m512 acc16[ATT_MAX_DIM / 16];
    for (int c = 0; c < D / 16; c++) acc16[c] = _mm512_setzero_ps();
    for (int t = 0; t < P + kept; t++) {
      const float* v = pool + (size_t)(t < P ? pre[t] : own[t - P]) * stride + off;
      __m512 wt = _mm512_set1_ps(wb[t * 8 + lane]);
      for (int c = 0; c < D / 16; c++) acc16[c] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(v + 16 * c), acc16[c]);
    }
    __m512 scale = _mm512_set1_ps(inv);
    for (int c = 0; c < D / 16; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(acc16[c], scale));
    return;
  }
#endif
  att_v acc[ATT_MAX_DIM / 8];
  for (int c = 0; c < D / 8; c++) acc[c] = V_ZERO();
  for (int t = 0; t < P + kept; t++) {
    const float* v = pool + (size_t)(t < P ? pre[t] : own[t - P]) * stride + off;
    att_v wt = V_SET1(wb[t * 8 + lane]);
    for (int c = 0; c < D / 8; c++) acc[c] = V_FMA(wt, V_LOAD(v + 8 * c), acc[c]);
  }
  att_v scale = V_SET1(inv);
  for (int c = 0; c < D / 8; c++) V_STORE(o + 8 * c, V_MUL(acc[c], scale));
}

#endif
