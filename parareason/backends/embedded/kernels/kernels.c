/* The embedded engine's C kernels as one shared library and one translation unit, so that
 * they share spin_pool.h's one pool of threads. */
#include "q8_linear.c"
#include "decode_attention.c"
#include "decode_layers.c"
#include "sampling.c"
