/* The q8 kernel's activations: each input row prepared (RMSNorm or SwiGLU fused, or
 * copied) and quantized to int8 codes by blocks of 32, as llama.cpp's Q8_0. Included by
 * q8_linear.c, which defines BLOCK. */
#ifndef PARAREASON_Q8_QUANTIZE_H
#define PARAREASON_Q8_QUANTIZE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* What happens to an input row before it is quantized: fused here, the row needs no
 * pass of its own in torch and no temporary. */
#define Q8_PLAIN 0
#define Q8_RMSNORM 1 /* x [K]: norm_w[k] * (x[k] / sqrt(mean(x^2) + eps)), as activations.rms_norm */
#define Q8_SWIGLU 2  /* x [2K]: silu(x[k]) * x[K + k], as activations.swiglu */

static void prepare_row(const float* x, int K, int Kp, int op, const float* norm_w, float eps, float* out) {
  if (op == Q8_RMSNORM) {
    double ss = 0.0;
    for (int k = 0; k < K; k++) ss += (double)x[k] * x[k];
    float r = (float)(1.0 / sqrt(ss / K + eps));
    for (int k = 0; k < K; k++) out[k] = norm_w[k] * (x[k] * r);
  } else if (op == Q8_SWIGLU) {
    for (int k = 0; k < K; k++) out[k] = x[k] / (1.f + expf(-x[k])) * x[K + k];
  } else {
    memcpy(out, x, (size_t)K * sizeof(float));
  }
  for (int k = K; k < Kp; k++) out[k] = 0.f;
}

/* One row of Kp (a multiple of 32) floats -> codes, one scale and one code sum per block. */
static void quantize_row(const float* x, int Kp, int8_t* q, float* s, int32_t* sq) {
  for (int b = 0; b < Kp / BLOCK; b++) {
    const float* xb = x + b * BLOCK;
    float amax = 0.f;
    for (int i = 0; i < BLOCK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    float inv = amax > 0.f ? 127.f / amax : 0.f;
    int32_t sum = 0;
    for (int i = 0; i < BLOCK; i++) {
      int v = (int)nearbyintf(xb[i] * inv);
      v = v > 127 ? 127 : (v < -127 ? -127 : v);
      q[b * BLOCK + i] = (int8_t)v;
      sum += v;
    }
    s[b] = amax / 127.f;
    sq[b] = sum;
  }
}

typedef struct {
  const float* x;
  int x_cols, K, Kp, op;
  const float* norm_w;
  float eps;
  int8_t* q;
  float* s;
  int32_t* sq;
} quantize_job;

static void quantize_range(void* arg, int m_begin, int m_end) {
  const quantize_job* j = (const quantize_job*)arg;
  float row[j->Kp];
  int nb = j->Kp / BLOCK;
  for (int m = m_begin; m < m_end; m++) {
    prepare_row(j->x + (size_t)m * j->x_cols, j->K, j->Kp, j->op, j->norm_w, j->eps, row);
    quantize_row(row, j->Kp, j->q + (size_t)m * j->Kp, j->s + (size_t)m * nb, j->sq + (size_t)m * nb);
  }
}

#endif
