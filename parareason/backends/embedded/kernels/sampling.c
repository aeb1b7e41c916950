/* One token per row from float32 logits: greedy, temperature, top-k, top-p, the token's
 * logprob and the top logprobs, rows spread over the pool's threads (sampler_kernel.py).
 *
 * The same algorithm as sampler.py, which stays the reference and the path without a
 * compiler: the row's one uniform draw u (drawn by the caller from the row's generator)
 * picks the token by inverting the CDF of the kept tokens, sorted by probability (ties by
 * id); top-k before top-p (transformers' order); the nucleus is the smallest prefix whose
 * mass reaches top_p (a token is kept while the mass before it is below top_p); logprobs
 * are the model's at temperature 1. Only the rounding differs from torch's: sums run in
 * blocks of float lanes added in double.
 *
 * Passes over a row: block maxima (128 logits each: the maximum, the argmax's block, the
 * blocks that can hold a top k); exp and sums in blocks of 1024 (their sums say which block
 * the draw falls in); for top-k / top-p the tokens at or above a threshold, lowered until
 * they hold the k tokens or the top_p mass, then sorted. A row's result depends on its own
 * logits, parameters and draw alone.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spin_pool.h"
#include "vec8.h"

#define SMP_BLOCK 128   /* logits per block maximum */
#define SMP_SUM 1024    /* logits per partial sum */
#define SMP_MAX_TOP 64  /* the most top logprobs (more: sampler.py) */

typedef struct {
  float temperature;  /* <= 0: greedy */
  int top_k;          /* <= 0: off */
  double top_p;       /* >= 1: off */
  int top_logprobs;   /* 0 .. SMP_MAX_TOP */
  double uniform;     /* the row's draw in [0, 1) (sampled rows) */
} smp_params;

typedef struct {
  const float* const* rows;
  int V;
  const smp_params* params;
  int32_t* tokens;
  float* logprobs;
  int32_t* status;  /* 0 done, 1 NaN or +inf logits (or all -inf), -1 no memory */
  int32_t* top_ids;  /* [rows, SMP_MAX_TOP] */
  float* top_vals;
} smp_job;

static __thread struct {
  size_t w_n, bmax_n, bsum_n, ids_n;
  float *w, *bmax;  /* [V] exp((x - max) / T); [V / SMP_BLOCK + 1] */
  double* bsum;  /* [V / SMP_SUM + 1] */
  int32_t* ids;  /* [V] candidates */
} smp_scratch;

static int smp_reserve(int V) {
  return vec_grow((void**)&smp_scratch.w, &smp_scratch.w_n, (size_t)V, sizeof(float)) ||
         vec_grow((void**)&smp_scratch.bmax, &smp_scratch.bmax_n, (size_t)V / SMP_BLOCK + 1, sizeof(float)) ||
         vec_grow((void**)&smp_scratch.bsum, &smp_scratch.bsum_n, (size_t)V / SMP_SUM + 1, sizeof(double)) ||
         vec_grow((void**)&smp_scratch.ids, &smp_scratch.ids_n, (size_t)V, sizeof(int32_t)) ? -1 : 0;
}

static inline float smp_block_max(const float* x, int n) {
  float m = -INFINITY;
  int i = 0;
  if (n >= 8) {
    att_v v = V_LOAD(x);
    for (i = 8; i + 8 <= n; i += 8) v = V_MAX(V_LOAD(x + i), v);
    float l[8];
    V_STORE(l, v);
    for (int k = 0; k < 8; k++) m = l[k] > m ? l[k] : m;
  }
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

/* sum of w[0..n) (n <= SMP_SUM): 8 float lanes, then the lanes in double */
static inline double smp_block_sum(const float* w, int n) {
  att_v v = V_ZERO();
  int i = 0;
  for (; i + 8 <= n; i += 8) v = V_ADD(v, V_LOAD(w + i));
  float l[8];
  V_STORE(l, v);
  double s = 0.0;
  for (int k = 0; k < 8; k++) s += l[k];
  for (; i < n; i++) s += w[i];
  return s;
}

/* Insert (value, id) into the k best so far, largest first; ties keep the earlier id first. */
static inline void smp_insert(float* vals, int32_t* ids, int* have, int k, float v, int32_t id) {
  if (*have == k && !(v > vals[k - 1])) return;
  int at = *have < k ? (*have)++ : k - 1;
  while (at > 0 && v > vals[at - 1]) {
    vals[at] = vals[at - 1];
    ids[at] = ids[at - 1];
    at--;
  }
  vals[at] = v;
  ids[at] = id;
}

/* The k largest of x (k <= SMP_MAX_TOP), from the k blocks with the largest maxima: any
 * logit outside them has k logits at or above it. */
static void smp_top(const float* x, int V, const float* bmax, int nb, int k, float* vals, int32_t* ids) {
  float bv[SMP_MAX_TOP];
  int32_t bi[SMP_MAX_TOP];
  int nbest = 0, have = 0;
  for (int b = 0; b < nb; b++) smp_insert(bv, bi, &nbest, k, bmax[b], b);
  /* the blocks in id order, so that equal logits come in id order as in one scan */
  for (int i = 1; i < nbest; i++)
    for (int j = i; j > 0 && bi[j] < bi[j - 1]; j--) {
      int32_t t = bi[j]; bi[j] = bi[j - 1]; bi[j - 1] = t;
    }
  for (int c = 0; c < nbest; c++) {
    int lo = bi[c] * SMP_BLOCK, hi = lo + SMP_BLOCK < V ? lo + SMP_BLOCK : V;
    for (int i = lo; i < hi; i++) smp_insert(vals, ids, &have, k, x[i], i);
  }
}

static __thread const float* smp_sort_w;  /* qsort's comparator has no argument for it */
static int smp_by_weight(const void* a, const void* b) {  /* descending weight, then id */
  int32_t i = *(const int32_t*)a, j = *(const int32_t*)b;
  float wi = smp_sort_w[i], wj = smp_sort_w[j];
  return wi > wj ? -1 : wi < wj ? 1 : (i > j) - (i < j);
}

/* Top-k and / or top-p over w (total mass `total`): the kept tokens' ids, sorted, in ids;
 * returns how many, and their mass in *kept. */
static int smp_filter(const float* w, int V, double total, const smp_params* p, int32_t* ids, double* kept) {
  int k = p->top_k <= 0 ? 0 : p->top_k < V ? p->top_k : V;  /* 0: no top-k */
  static const float thresholds[] = {1.0f / 64, 1.0f / 4096, 1e-6f, 1e-12f, 1e-24f, 0.0f};
  int n = 0;
  for (int s = 0; s < (int)(sizeof thresholds / sizeof *thresholds); s++) {
    float t = thresholds[s];
    n = 0;
    double mass = 0.0;
    for (int i = 0; i < V; i++)
      if (w[i] >= t) ids[n++] = i;
    if (k && n < k) continue;
    smp_sort_w = w;
    qsort(ids, (size_t)n, sizeof *ids, smp_by_weight);
    if (k) n = k;
    for (int j = 0; j < n; j++) mass += w[ids[j]];
    double of = k ? mass : total;
    if (!k && p->top_p < 1.0 && mass < p->top_p * total && t > 0.0f) continue;  /* the nucleus goes on past t */
    if (p->top_p < 1.0) {  /* kept while the mass before a token is below top_p */
      double before = 0.0;
      int j = 0;
      for (; j < n && (j == 0 || before < p->top_p * of); j++) before += w[ids[j]];
      n = j;
      mass = before;
    }
    *kept = mass;
    return n;
  }
  *kept = 0.0;
  return 0;
}

static void smp_row(const smp_job* job, int r) {
  const float* x = job->rows[r];
  const smp_params* p = job->params + r;
  int V = job->V, nb = (V + SMP_BLOCK - 1) / SMP_BLOCK;
  if (smp_reserve(V)) {
    job->status[r] = -1;
    return;
  }
  float *w = smp_scratch.w, *bmax = smp_scratch.bmax;
  double* bsum = smp_scratch.bsum;
  float m = -INFINITY;
  for (int b = 0; b < nb; b++) {
    int lo = b * SMP_BLOCK;
    bmax[b] = smp_block_max(x + lo, lo + SMP_BLOCK < V ? SMP_BLOCK : V - lo);
    m = bmax[b] > m ? bmax[b] : m;
  }
  double s1 = 0.0, s2 = 0.0;
  int sampled = p->temperature > 0.0f;
  float inv_t = sampled ? 1.0f / p->temperature : 0.0f;
  for (int lo = 0; lo < V; lo += SMP_SUM) {
    int n = lo + SMP_SUM < V ? SMP_SUM : V - lo;
    for (int i = 0; i < n; i++) w[lo + i] = vec_exp_nonpos(x[lo + i] - m);
    s1 += smp_block_sum(w + lo, n);
    if (sampled) {
      for (int i = 0; i < n; i++) w[lo + i] = vec_exp_nonpos((x[lo + i] - m) * inv_t);
      s2 += bsum[lo / SMP_SUM] = smp_block_sum(w + lo, n);
    }
  }
  if (!(m < INFINITY) || !(m > -INFINITY) || s1 != s1 || s2 != s2) {  /* NaN fails every compare */
    job->status[r] = 1;
    return;
  }
  float log_s1 = (float)log(s1);
  int token = -1;
  if (!sampled) {  /* the first maximum */
    for (int b = 0; b < nb && token < 0; b++)
      if (bmax[b] == m)
        for (int i = b * SMP_BLOCK; i < V; i++)
          if (x[i] == m) { token = i; break; }
  } else if (p->top_k <= 0 && p->top_p >= 1.0) {  /* the CDF over all tokens, block by block */
    double target = p->uniform * s2, acc = 0.0;
    int lo = 0;
    for (; lo + SMP_SUM < V && acc + bsum[lo / SMP_SUM] <= target; lo += SMP_SUM) acc += bsum[lo / SMP_SUM];
    for (int i = lo; i < V; i++) {
      if (w[i] > 0.0f) token = i;  /* past the end by rounding: the last possible token */
      acc += w[i];
      if (acc > target && w[i] > 0.0f) break;
    }
  } else {
    double kept;
    int32_t* ids = smp_scratch.ids;
    int n = smp_filter(w, V, s2, p, ids, &kept);
    double target = p->uniform * kept, acc = 0.0;
    for (int j = 0; j < n; j++) {
      token = ids[j];
      acc += w[ids[j]];
      if (acc > target) break;
    }
  }
  if (token < 0) {
    job->status[r] = 1;
    return;
  }
  job->tokens[r] = token;
  job->logprobs[r] = (x[token] - m) - log_s1;
  if (p->top_logprobs > 0) {
    float* vals = job->top_vals + (size_t)r * SMP_MAX_TOP;
    int32_t* ids = job->top_ids + (size_t)r * SMP_MAX_TOP;
    smp_top(x, V, bmax, nb, p->top_logprobs, vals, ids);
    for (int j = 0; j < p->top_logprobs; j++) vals[j] = (vals[j] - m) - log_s1;
  }
  job->status[r] = 0;
}

static void smp_rows(void* arg, int begin, int end) {
  for (int r = begin; r < end; r++) smp_row((const smp_job*)arg, r);
}

/* Sample every row: rows[r] -> logits [V]; params[r]; out: tokens, logprobs, status,
 * top_ids / top_vals [rows, SMP_MAX_TOP] (the first params[r].top_logprobs of each). */
void sample_rows(const float* const* rows, int n, int V, const smp_params* params, int32_t* tokens,
                 float* logprobs, int32_t* status, int32_t* top_ids, float* top_vals, int threads) {
  smp_job job = {rows, V, params, tokens, logprobs, status, top_ids, top_vals};
  pool_run(smp_rows, &job, n, threads, NULL, 0);
}

int sample_max_top(void) { return SMP_MAX_TOP; }
