// Grouped-query attention as ops, shared by every architecture that has it (arch/recurrent_gemma.cc,
// arch/mamba2_hybrid.cc): q, k, v projections of n rows of normed input u, RoPE where the model has
// it, the key/value ring in the state (window slots: a local window, or a hybrid's max_context), and
// the output projection.
#pragma once

#include "arch/arch.h"

namespace rill {

struct AttentionShape {
  size_t heads, kv_heads, head_dim;  // query heads, key/value heads, channels per head
  size_t rope_dims;                  // leading channels of each head RoPE rotates; 0: none
  float rope_theta;
  size_t window;                     // ring slots
  float scale;                       // scores = scale q.k
  bool kv_f16;                       // the rings' element type
};

// The activations, each [n, width]: q, attn [heads D], k, v [kv_heads D]; P [n] the rows' positions;
// scores [heads, window] (one row at a time).
struct AttentionBuffers {
  float *q, *k, *v, *attn, *scores;
  const int64_t* P;
};

// L: a layer's views and state (q, k, v, o and their biases q_b, k_b, v_b, o_b, empty where absent;
// k_ring, v_ring). o [n, d] = o_proj(attention(u)).
template <class L>
void gqa_attention(const Exec& x, const L& layer, const AttentionShape& a, const Rows& r, const float* u, size_t d,
                   const AttentionBuffers& b, float* o) {
  const Ops& op = *x.backend->ops;
  const size_t n = r.n, H = a.heads, KV = a.kv_heads, D = a.head_dim;
  linear(x, layer.q, layer.q_b, u, d, b.q, n);  // q [n, H D]
  linear(x, layer.k, layer.k_b, u, d, b.k, n);  // k [n, KV D]
  linear(x, layer.v, layer.v_b, u, d, b.v, n);  // v [n, KV D]
  if (a.rope_dims) {
    op.rope(x, b.q, H * D, b.P, n, H, D, a.rope_dims, a.rope_theta);
    op.rope(x, b.k, KV * D, b.P, n, KV, D, a.rope_dims, a.rope_theta);
  }
  op.attend(x, state(r, layer.k_ring), state(r, layer.v_ring), a.kv_f16, b.q, b.k, b.v, b.P, b.attn, n, H, KV, D,
            a.window, a.scale, b.scores);  // attn [n, H D]
  linear(x, layer.o, layer.o_b, b.attn, H * D, o, n);  // o [n, d]
}

}  // namespace rill
