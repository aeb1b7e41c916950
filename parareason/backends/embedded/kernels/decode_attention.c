/* Decode attention over the token-slot KV pool, RoPE and the KV write fused in: one call
 * per layer for a batch of rows that each add one token (model.forward with Q = 1).
 *
 * Phase 1, per row (the caller): RoPE on q and k, rotate-half as in transformers,
 * x * cos + rotate_half(x) * sin, in the same float operations as torch's (no FMA), so the
 * pool holds the bits the torch path writes; ParaThinker's segment embedding is added to k
 * and v first where given. k and v go to the row's write slot.
 *
 * Phase 2, items (unit, kv head, chunk of rows) over the pool's threads. A unit is a prefix
 * group (rows whose first P slots are the same: siblings of one prompt) or a lone row. Each
 * query head attends to its unit's prefix, then to its row's own slots where the mask allows,
 * as one softmax. The prefix's keys are read once for all the chunk's rows (from memory
 * once a step; the other rows find them in cache), 8 at a time for each block of 8 query
 * heads (attention_tiles.h).
 *
 * A query's result depends on its keys alone, never on the other rows: its scores, sum and
 * output accumulate key by key in slot order, whichever tile or chunk a key falls in. So a
 * row gets the same bits alone (its slots in one list) as among any number of siblings (the
 * same keys, prefix first, in the same order). Products go through fmaf, rounded once on
 * every path (libm's when the CPU has no FMA); exp is a polynomial in plain C, the same in a
 * vector lane and a scalar tail. torch's CPU flash kernel, which this replaces for float32,
 * multiplies through MKL, whose blocking follows the call's shape and the buffers' alignment:
 * a row's bits changed with its siblings now and then.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spin_pool.h"
#include "attention_tiles.h"
#include "vec8.h"

#define ATT_CHUNK 4  /* rows of a prefix group per item */

/* What every layer's call of one decode forward shares (decode_attention.DecodeReads). */
typedef struct {
  int B, H, KVH, D, L, groups, threads;
  float scale;
  const int64_t* positions;  /* [B]: rows of cos_t / sin_t [*, D] */
  const float *cos_t, *sin_t;
  const int64_t* write_slots;  /* [B] */
  const int64_t* read_slots;  /* [B, L]: each row's slots after its prefix */
  const uint8_t* mask;  /* [B, L]: 1 = attend */
  const int32_t* row_group;  /* [B]: the row's prefix group, -1 for none */
  const int64_t *group_slots, *group_offsets;  /* group g's slots: group_slots[offsets[g] .. offsets[g + 1]) */
} att_batch;

typedef struct {
  const att_batch* a;  /* the reads, shapes and scale */
  const float* q;  /* [B, H, D], RoPE applied */
  const float *k_pool, *v_pool;  /* [capacity, KVH, D] */
  const int32_t* unit_rows;  /* [B]: rows unit by unit (units: the prefix groups, then lone rows) */
  const int32_t* unit_first;  /* [units + 1]: unit u's rows are unit_rows[first[u]..first[u + 1]) */
  const int32_t* items;  /* [n, 3]: unit, kv head, first row of the chunk within the unit */
  float* out;  /* [B, H, D] */
  _Atomic int failed;
} att_job;

static __thread struct {
  size_t floats, slots;
  float* buf;  /* scores / weights, then outputs */
  int64_t* own;  /* each row's own slots that its mask keeps */
} att_scratch;

static int att_reserve(size_t floats, size_t slots) {
  return vec_grow((void**)&att_scratch.buf, &att_scratch.floats, floats, sizeof(float)) ||
         vec_grow((void**)&att_scratch.own, &att_scratch.slots, slots, sizeof(int64_t)) ? -1 : 0;
}


/* Query heads kvh * g .. + g of up to ATT_CHUNK rows of `unit` from its row `first` on,
 * against the unit's prefix slots, then each row's own slots that its mask keeps. A row's
 * g queries take ceil(g / 8) blocks of 8 lanes (the last padded with zero queries); block
 * rb's scores, then weights, are w[rb][t][8] for its prefix keys t < P and own keys after.
 * D is a constant where att_item calls it, so that the loops unroll and keep their sums in
 * registers. */
static inline __attribute__((always_inline)) void att_item_d(att_job* j, int unit, int kvh, int first, int D) {
  int g = j->a->H / j->a->KVH, L = j->a->L, nb = (g + 7) / 8;
  size_t stride = (size_t)j->a->KVH * D, off = (size_t)kvh * D;
  const int32_t* rows = j->unit_rows + j->unit_first[unit] + first;
  int n_rows = j->unit_first[unit + 1] - j->unit_first[unit] - first;
  if (n_rows > ATT_CHUNK) n_rows = ATT_CHUNK;
  const int64_t* pre = NULL;
  int P = 0;
  if (unit < j->a->groups) {
    pre = j->a->group_slots + j->a->group_offsets[unit];
    P = (int)(j->a->group_offsets[unit + 1] - j->a->group_offsets[unit]);
  }
  int width = P + L, blocks = n_rows * nb;
  if (att_reserve((size_t)blocks * 8 * (width + D + 1), (size_t)n_rows * L + 1)) {
    atomic_store(&j->failed, 1);
    return;
  }
  float* w = att_scratch.buf;  /* [blocks, width, 8] scores, then softmax weights */
  float* qt = w + (size_t)blocks * width * 8;  /* [blocks, D, 8]: the queries transposed */
  float* sums = qt + (size_t)blocks * D * 8;  /* [blocks, 8]: each lane's sum of weights */
  int64_t* own = att_scratch.own;  /* [n_rows, L]: row r's kept own slots */
  att_v scale = V_SET1(j->a->scale);
  int kept[ATT_CHUNK];
  for (int r = 0; r < n_rows; r++) {
    const int64_t* slots = j->a->read_slots + (size_t)rows[r] * L;
    const uint8_t* m = j->a->mask + (size_t)rows[r] * L;
    kept[r] = 0;
    for (int t = 0; t < L; t++)
      if (m[t]) own[(size_t)r * L + kept[r]++] = slots[t];
    for (int b = 0; b < nb; b++)
      for (int l = 0; l < 8; l++) {
        int h = b * 8 + l;
        const float* q = j->q + ((size_t)rows[r] * j->a->H + (size_t)kvh * g + h) * D;
        float* dst = qt + (size_t)(r * nb + b) * D * 8 + l;
        for (int d = 0; d < D; d++) dst[d * 8] = h < g ? q[d] : 0.0f;
      }
  }
  for (int rb = 0; rb < blocks; rb++) {  /* scores and softmax weights, 8 queries at a time */
    int r = rb / nb, n = P + kept[r];
    float* wb = w + (size_t)rb * width * 8;
    const float* q = qt + (size_t)rb * D * 8;
    if (P) att_block_scores(q, j->k_pool, j->v_pool, pre, P, stride, off, D, scale, wb, rb == 0);
    if (kept[r])
      att_block_scores(q, j->k_pool, j->v_pool, own + (size_t)r * L, kept[r], stride, off, D, scale, wb + (size_t)P * 8,
                       rb % nb == 0);
    att_v mx = V_SET1(-INFINITY), sum = V_ZERO();
    for (int t = 0; t < n; t++) mx = V_MAX(V_LOAD(wb + t * 8), mx);
    float m8[8];
    V_STORE(m8, mx);
    for (int t = 0; t < n * 8; t++) wb[t] = vec_exp_nonpos(wb[t] - m8[t % 8]);
    for (int t = 0; t < n; t++) sum = V_ADD(sum, V_LOAD(wb + t * 8));  /* in slot order: the same in any batch */
    V_STORE(sums + rb * 8, sum);
  }
  for (int rb = 0; rb < blocks; rb++) {
    int r = rb / nb;
    for (int l = 0; l < 8 && (rb % nb) * 8 + l < g; l++) {
      int h = (rb % nb) * 8 + l;
      /* no key at all (an empty mask): zeros, where SDPA would give NaN */
      float inv = P + kept[r] ? 1.0f / sums[rb * 8 + l] : 0.0f;
      att_values(w + (size_t)rb * width * 8, l, pre, P, own + (size_t)r * L, kept[r], j->v_pool, stride, off, D,
                 inv, j->out + ((size_t)rows[r] * j->a->H + (size_t)kvh * g + h) * D);
    }
  }
}

static void att_item(att_job* j, int unit, int kvh, int first) {
  switch (j->a->D) {  /* the common head sizes as constants; any other through the general loops */
    case 64: att_item_d(j, unit, kvh, first, 64); break;
    case 128: att_item_d(j, unit, kvh, first, 128); break;
    default: att_item_d(j, unit, kvh, first, j->a->D);
  }
}

static void att_items(void* arg, int begin, int end) {
  att_job* j = arg;
  for (int i = begin; i < end; i++) att_item(j, j->items[3 * i], j->items[3 * i + 1], j->items[3 * i + 2]);
}

/* RoPE on one head in place of `out`: out = x * cos + rotate_half(x) * sin. */
static void att_rope(const float* x, const float* cos_p, const float* sin_p, int D, float* out) {
  int half = D / 2;
  for (int d = 0; d < half; d++) out[d] = x[d] * cos_p[d] + (-x[d + half]) * sin_p[d];
  for (int d = half; d < D; d++) out[d] = x[d] * cos_p[d] + x[d - half] * sin_p[d];
}

static __thread struct {
  size_t floats, ints;
  float* q;
  int32_t* ints_buf;
} att_caller;


/* One layer's decode attention. qkv [B, (H + 2 KVH) * D] (row stride `stride`): q, k, v of
 * each row's new token, before RoPE; seg [B, D] (or NULL) is added to k and v before RoPE.
 * k and v go to the write slots of k_pool / v_pool [capacity, KVH, D]. Row b reads its
 * prefix group's slots, then read_slots[b, t] where mask[b, t]. out [B, H * D]. Returns 0,
 * or -1 when scratch memory cannot be allocated, -2 for a head_dim over ATT_MAX_DIM or not a
 * multiple of 8. */
int attn_decode(const att_batch* a, const float* qkv, long stride, const float* seg, float* k_pool, float* v_pool,
                float* out) {
  int B = a->B, H = a->H, KVH = a->KVH, D = a->D, groups = a->groups;
  if (D > ATT_MAX_DIM || D % 8) return -2;
  size_t qf = (size_t)B * H * D, nints = (size_t)4 * B + 3 * (size_t)B * KVH + 2;
  if (vec_grow((void**)&att_caller.q, &att_caller.floats, qf, sizeof(float)) ||
      vec_grow((void**)&att_caller.ints_buf, &att_caller.ints, nints, sizeof(int32_t)))
    return -1;
  float* q = att_caller.q;
  float kbuf[ATT_MAX_DIM];
  for (int b = 0; b < B; b++) {
    const float* row = qkv + (size_t)b * stride;
    const float *c = a->cos_t + (size_t)a->positions[b] * D, *s = a->sin_t + (size_t)a->positions[b] * D;
    for (int h = 0; h < H; h++) att_rope(row + (size_t)h * D, c, s, D, q + ((size_t)b * H + h) * D);
    for (int h = 0; h < KVH; h++) {
      const float* k = row + (size_t)(H + h) * D;
      const float* v = row + (size_t)(H + KVH + h) * D;
      float* kd = k_pool + ((size_t)a->write_slots[b] * KVH + h) * D;
      float* vd = v_pool + ((size_t)a->write_slots[b] * KVH + h) * D;
      if (seg) {
        const float* e = seg + (size_t)b * D;
        for (int d = 0; d < D; d++) kbuf[d] = k[d] + e[d];
        for (int d = 0; d < D; d++) vd[d] = v[d] + e[d];
        k = kbuf;
      } else {
        memcpy(vd, v, (size_t)D * sizeof(float));
      }
      att_rope(k, c, s, D, kd);
    }
  }
  /* units: the prefix groups, then every row in none */
  int32_t* unit_first = att_caller.ints_buf;  /* [units + 1] <= B + 1 */
  int32_t* unit_rows = unit_first + B + 1;  /* [B] */
  int32_t* items = unit_rows + B;  /* [<= B * KVH, 3] */
  int32_t* fill = items + 3 * (size_t)B * KVH;  /* [groups] <= B */
  for (int u = 0; u <= groups; u++) unit_first[u] = 0;
  for (int b = 0; b < B; b++)
    if (a->row_group[b] >= 0) unit_first[a->row_group[b] + 1]++;
  for (int u = 0; u < groups; u++) unit_first[u + 1] += unit_first[u];
  for (int u = 0; u < groups; u++) fill[u] = unit_first[u];
  int units = groups, lone = unit_first[groups];
  for (int b = 0; b < B; b++) {
    if (a->row_group[b] >= 0) {
      unit_rows[fill[a->row_group[b]]++] = b;
    } else {
      unit_rows[lone] = b;
      unit_first[++units] = ++lone;
    }
  }
  int n_items = 0;
  for (int u = 0; u < units; u++) {
    int n = unit_first[u + 1] - unit_first[u];
    for (int h = 0; h < KVH; h++)
      for (int r = 0; r < n; r += ATT_CHUNK) {
        items[3 * n_items] = u;
        items[3 * n_items + 1] = h;
        items[3 * n_items + 2] = r;
        n_items++;
      }
  }
  att_job job = {a, q, k_pool, v_pool, unit_rows, unit_first, items, out, 0};
  /* on every thread, even at batch 1: its two items wait on memory (the KV is cold), and
   * two cores wait in parallel (48 vs 34 us a layer in the engine, qwen2.5-0.5b-coder) */
  pool_run(att_items, &job, n_items, a->threads, NULL, 0);
  return atomic_load(&job.failed) ? -1 : 0;
}
