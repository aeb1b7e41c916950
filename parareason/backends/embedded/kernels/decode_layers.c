/* A decode step's decoder layers in one call: model.forward's loop over its layers for
 * rows that each add one token, with q8 weights and attention in C. The Python loop makes
 * about seven calls a layer (four q8 linears, the attention, two residual adds), each a
 * few microseconds of Python and ctypes before any work: at batch 1 that is most of what
 * a step spends outside its matmuls. This runs the same calls in the same order (q8_forward,
 * attn_decode, then float adds), so the residual stream gets the same bits (tested). */
#include <stdint.h>

#include "vec8.h"

/* One q8 linear layer as q8_kernel.linear passes it to q8_forward. */
typedef struct {
  const uint8_t* tiles;
  const float *scales, *bias;  /* bias [N] or NULL */
  int N, K, Kp;
  const void* ahead;  /* the next layer's weights, prefetched by idle threads (or NULL) */
  long ahead_bytes;
} q8_weight;

/* A layer's weights: set once per model and only read, so two engines sharing a model can
 * decode at once (ctypes lets go of the GIL); what changes per call comes as arguments. */
typedef struct {
  q8_weight qkv, o, gate_up, down;
  const float *input_norm, *post_norm;  /* [hidden] */
} decode_layer;

static __thread struct {
  size_t floats;
  float* buf;
} layers_scratch;

static int layer_linear(const q8_weight* w, const float* x, int M, int op, const float* norm_w, float eps,
                        float* y, int threads) {
  return q8_forward(w->tiles, w->scales, w->bias, x, M, w->K, w->Kp, op, norm_w, eps, y, w->N, threads,
                    w->ahead, w->ahead_bytes);
}

static void add_rows(float* h, const float* y, size_t n) {
  for (size_t i = 0; i < n; i++) h[i] = h[i] + y[i];
}

/* h [B, hidden] in place, through n_layers layers: per layer
 *   qkv = q8(rms_norm(h)); attn = attention (RoPE, KV write); h += q8(attn);
 *   gate_up = q8(rms_norm(h)); h += q8(swiglu(gate_up)).
 * a: the step's reads (decode_attention.DecodeReads), shared by every layer. k_pool, v_pool:
 * [n_layers, capacity, KVH, D], layer i at i * layer_floats; segs: per layer, [B, D]
 * ParaThinker segment embeddings of the rows (or NULL), or NULL for none. Returns 0,
 * -1 when scratch memory cannot be allocated, -2 for a head_dim attn_decode does not take,
 * -3 for layers whose shapes do not chain. */
int decode_layers(const decode_layer* layers, int n_layers, const att_batch* a, float* h, int hidden, float eps,
                  int threads, float* k_pool, float* v_pool, long layer_floats, const float* const* segs) {
  int B = a->B;
  if (n_layers <= 0 || B <= 0) return 0;
  const decode_layer* first = &layers[0];
  size_t nqkv = (size_t)first->qkv.N, nattn = (size_t)a->H * a->D, ngu = (size_t)first->gate_up.N;
  size_t per_row = nqkv + nattn + (size_t)hidden + ngu;
  if (vec_grow((void**)&layers_scratch.buf, &layers_scratch.floats, per_row * B, sizeof(float))) return -1;
  float* qkv = layers_scratch.buf;
  float* attn = qkv + nqkv * B;
  float* out = attn + nattn * B;  /* o's and down's outputs, before they join h */
  float* gate_up = out + (size_t)hidden * B;
  for (int i = 0; i < n_layers; i++) {
    const decode_layer* l = &layers[i];
    if ((size_t)l->qkv.N != nqkv || l->qkv.K != hidden || (size_t)l->o.K != nattn || l->o.N != hidden ||
        l->gate_up.K != hidden || (size_t)l->gate_up.N != ngu || 2 * l->down.K != l->gate_up.N ||
        l->down.N != hidden || nqkv != (size_t)(a->H + 2 * a->KVH) * a->D)
      return -3;
    int failed = layer_linear(&l->qkv, h, B, Q8_RMSNORM, l->input_norm, eps, qkv, threads);
    size_t at = (size_t)i * (size_t)layer_floats;
    if (!failed) failed = attn_decode(a, qkv, (long)nqkv, segs ? segs[i] : NULL, k_pool + at, v_pool + at, attn);
    if (!failed) failed = layer_linear(&l->o, attn, B, Q8_PLAIN, NULL, 0.f, out, threads);
    if (failed) return failed;
    add_rows(h, out, (size_t)B * hidden);
    failed = layer_linear(&l->gate_up, h, B, Q8_RMSNORM, l->post_norm, eps, gate_up, threads);
    if (!failed) failed = layer_linear(&l->down, gate_up, B, Q8_SWIGLU, NULL, 0.f, out, threads);
    if (failed) return failed;
    add_rows(h, out, (size_t)B * hidden);
  }
  return 0;
}
