/* The C API from C99, linked against the static librill.a (rill_* symbols only):
 *   - the layout of every public struct (a change here is an ABI break: bump the major version);
 *   - options structs older (smaller) and newer (larger) than the library's;
 *   - model and session in caller memory, state blobs, batch step against single steps, errors.
 *
 *   capi_test MODEL.rill
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

static int failures = 0, checks = 0;
#define CHECK(cond)                                                  \
  do {                                                               \
    ++checks;                                                        \
    if (!(cond)) {                                                   \
      ++failures;                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    }                                                                \
  } while (0)
#define REQUIRE(cond)                                                \
  do {                                                               \
    ++checks;                                                        \
    if (!(cond)) { /* evaluated once */                              \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond); \
      return 1;                                                      \
    }                                                                \
  } while (0)

typedef struct {
  void* raw;
  unsigned char* p;
  size_t size;
} block;

static int block_alloc(block* b, size_t bytes) {
  b->raw = malloc(bytes + RILL_ALIGN);
  b->size = bytes;
  b->p = b->raw ? (unsigned char*)(((uintptr_t)b->raw + RILL_ALIGN - 1) / RILL_ALIGN * RILL_ALIGN) : NULL;
  return b->raw != NULL;
}

static void check_layout(void) {
  /* 64-bit layouts, as released. */
  CHECK(sizeof(rill_error) == 260);
  CHECK(sizeof(rill_model_options) == 16 && offsetof(rill_model_options, verify) == 12);
  CHECK(sizeof(rill_session_options) == 16 && offsetof(rill_session_options, pool) == 8);
  CHECK(sizeof(rill_batch_options) == 16 && offsetof(rill_batch_options, pool) == 8);
  CHECK(sizeof(rill_sampler_options) == 24 && offsetof(rill_sampler_options, seed) == 16);
  /* The released fields keep their offsets; d_input and d_output were appended (struct_size grows). */
  CHECK(sizeof(rill_model_info) == 80 && offsetof(rill_model_info, weight_bytes) == 32 &&
        offsetof(rill_model_info, backend) == 64 && offsetof(rill_model_info, d_input) == 72 &&
        offsetof(rill_model_info, d_output) == 76);
  CHECK(RILL_OK == 0 && RILL_ARENA_TOO_SMALL == 40 && RILL_TOKEN_RANGE == 80 && RILL_STATE_MISMATCH == 82);
}

static int read_file(const char* path, block* out) {
  FILE* f = fopen(path, "rb");
  long n;
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (n <= 0 || !block_alloc(out, (size_t)n) || fread(out->p, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    return 0;
  }
  fclose(f);
  return 1;
}

static rill_session* new_session(const rill_model* m, block* arena) {
  rill_session_options so = rill_session_default_options();
  rill_session* s = NULL;
  size_t bytes = 0;
  if (rill_session_footprint(m, &so, &bytes) != RILL_OK || !block_alloc(arena, bytes)) return NULL;
  if (rill_session_init(m, &so, arena->p, bytes, &s, NULL) != RILL_OK) return NULL;
  return s;
}

/* A vector (sensor) model: float vectors in and out; bad input leaves the state as it was. */
static int vector_model(rill_model* m, const rill_model_info* info) {
  block arena, b0, b1;
  rill_session* s = NULL;
  size_t i, din = info->d_input, dout = info->d_output;
  float x[64], y[64], y2[64], rows[3 * 64];
  CHECK(info->vocab_size == 0 && din <= 64 && dout <= 64 && strcmp(info->arch_name, "s4d") == 0 &&
        info->arch == RILL_ARCH_S4D);
  REQUIRE((s = new_session(m, &arena)) != NULL);
  for (i = 0; i < din; ++i) x[i] = 0.25f * (float)i - 0.5f;
  CHECK(rill_session_step(s, 0, y, dout) == RILL_INVALID_ARGUMENT); /* takes no tokens */
  CHECK(rill_session_step_vector(s, x, din, y, dout) == RILL_OK);
  REQUIRE(block_alloc(&b0, rill_session_state_size(s)) && block_alloc(&b1, rill_session_state_size(s)));
  CHECK(rill_session_state_copy_out(s, b0.p, b0.size) == RILL_OK);
  x[0] = NAN;
  CHECK(rill_session_step_vector(s, x, din, y, dout) == RILL_NON_FINITE);
  x[0] = -0.5f;
  CHECK(rill_session_step_vector(s, x, din + 1, y, dout) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_step_vector(s, x, din, y, dout + 1) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_step_vector(NULL, x, din, y, dout) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_state_copy_out(s, b1.p, b1.size) == RILL_OK && memcmp(b0.p, b1.p, b0.size) == 0);
  /* Three steps one by one equal a prefill of three rows (its last output and its state). */
  for (i = 0; i < 3 * din; ++i) rows[i] = (float)(i % 7) * 0.3f - 1.f;
  for (i = 0; i < 3; ++i) CHECK(rill_session_step_vector(s, rows + i * din, din, y, dout) == RILL_OK);
  CHECK(rill_session_state_copy_out(s, b1.p, b1.size) == RILL_OK);
  CHECK(rill_session_state_copy_in(s, b0.p, b0.size) == RILL_OK);
  CHECK(rill_session_prefill_vectors(s, rows, 3, 3 * din, y2, dout) == RILL_OK);
  CHECK(memcmp(y, y2, dout * sizeof(float)) == 0);
  CHECK(rill_session_state_copy_out(s, b0.p, b0.size) == RILL_OK && memcmp(b0.p, b1.p, b0.size) == 0);
  /* Two sensor streams in one pass; the second's NaN row skipped, the first as if alone. */
  {
    block a2, bm;
    rill_session *s2 = NULL, *ss[2];
    rill_batch* b = NULL;
    rill_batch_options bo = rill_batch_default_options();
    rill_status st[2];
    float two[2 * 64], out[2 * 64];
    size_t bytes = 0;
    bo.max_streams = 2;
    REQUIRE((s2 = new_session(m, &a2)) != NULL);
    REQUIRE(rill_batch_footprint(m, &bo, &bytes) == RILL_OK && block_alloc(&bm, bytes));
    REQUIRE(rill_batch_init(m, &bo, bm.p, bytes, &b, NULL) == RILL_OK);
    CHECK(rill_session_state_copy_out(s2, b1.p, b1.size) == RILL_OK);
    for (i = 0; i < din; ++i) two[i] = two[din + i] = 0.1f * (float)i;
    two[din] = NAN;
    ss[0] = s; ss[1] = s2;
    CHECK(rill_batch_step_vectors(b, ss, two, 2, 2 * din, out, 2 * dout, st, RILL_BAD_STREAM_REFUSE_ALL) ==
          RILL_NON_FINITE);
    CHECK(st[0] == RILL_OK && st[1] == RILL_NON_FINITE);
    CHECK(rill_batch_step_vectors(b, ss, two, 2, 2 * din, out, 2 * dout, st, RILL_BAD_STREAM_SKIP) == RILL_OK);
    CHECK(rill_session_state_copy_in(s, b0.p, b0.size) == RILL_OK); /* back, then alone */
    CHECK(rill_session_step_vector(s, two, din, y, dout) == RILL_OK);
    CHECK(memcmp(y, out, dout * sizeof(float)) == 0 && isnan(out[dout]));
    CHECK(rill_session_state_copy_out(s2, b0.p, b0.size) == RILL_OK && memcmp(b0.p, b1.p, b0.size) == 0);
    CHECK(rill_batch_step(b, ss, NULL, 2, NULL, 0) == RILL_INVALID_ARGUMENT); /* no tokens for a vector model */
    free(a2.raw); free(bm.raw);
  }
  free(arena.raw); free(b0.raw); free(b1.raw);
  printf("capi_test (vector model, d_input %zu, d_output %zu): %d checks, %d failed\n", din, dout, checks, failures);
  fflush(stdout);
  return failures ? 1 : 0;
}

int main(int argc, char** argv) {
  block file, mem, a0, a1, a2, a3, bmem, blob, blob2, smem;
  rill_model* m = NULL;
  rill_session *s0, *s1, *s2, *s3;
  rill_batch* batch = NULL;
  rill_sampler* sampler = NULL;
  rill_error err;
  rill_model_info info;
  size_t bytes = 0, V, i, n = 0;
  float *want, *got;
  int32_t ids[64];

  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.rill\n", argv[0]);
    return 2;
  }
  check_layout();
  CHECK(rill_version() == RILL_VERSION_NUMBER);
  CHECK(strncmp(rill_version_string(), "0.1.0", 5) == 0);
  CHECK(strcmp(rill_status_str(RILL_ARENA_TOO_SMALL), "arena too small") == 0);
  CHECK(strcmp(rill_status_str(12345), "unknown status") == 0);

  /* Options: defaults, an older caller (struct ends early), a newer caller (unknown fields). */
  {
    rill_session_options so = rill_session_default_options();
    CHECK(so.struct_size == sizeof so && so.prefill_chunk == 32 && so.pool == NULL);
    rill_sampler_options po = rill_sampler_default_options();
    CHECK(po.temperature == 0.8f && po.top_k == 40 && po.top_p == 0.95f && po.seed == 0);
  }

  /* The model in caller memory: footprint, then init. */
  REQUIRE(read_file(argv[1], &file));
  CHECK(rill_model_footprint(file.p, 16, &bytes, &err) != RILL_OK && err.message[0] != '\0');
  REQUIRE(rill_model_footprint(file.p, file.size, &bytes, &err) == RILL_OK);
  REQUIRE(block_alloc(&mem, bytes));
  CHECK(rill_model_init(file.p, file.size, NULL, mem.p, bytes - 1, &m, &err) == RILL_ARENA_TOO_SMALL && m == NULL);
  CHECK(strstr(err.message, "needed") != NULL);
  CHECK(rill_model_init(file.p, file.size, NULL, mem.p + 8, bytes, &m, &err) == RILL_ALIGNMENT);
  {
    unsigned char newer[32];
    rill_model_options* mo = (rill_model_options*)(void*)newer;
    memset(newer, 0, sizeof newer);
    rill_model_options_init(mo, sizeof newer);
    CHECK(mo->verify == 1 && mo->struct_size == sizeof newer);
    CHECK(rill_model_init(file.p, file.size, mo, mem.p, bytes, &m, &err) == RILL_OK);  /* zero tail: fine */
    newer[20] = 1;
    CHECK(rill_model_init(file.p, file.size, mo, mem.p, bytes, &m, &err) == RILL_UNSUPPORTED);
    mo->struct_size = 2;
    CHECK(rill_model_init(file.p, file.size, mo, mem.p, bytes, &m, &err) == RILL_INVALID_ARGUMENT);
    rill_model_options older;
    rill_model_options_init(&older, offsetof(rill_model_options, device)); /* ends before device */
    CHECK(older.struct_size == 8 && older.backend == RILL_BACKEND_CPU);
    CHECK(rill_model_init(file.p, file.size, &older, mem.p, bytes, &m, &err) == RILL_OK);
  }
  REQUIRE(rill_model_init(file.p, file.size, NULL, mem.p, bytes, &m, &err) == RILL_OK);
  info.struct_size = sizeof info;
  REQUIRE(rill_model_get_info(m, &info) == RILL_OK);
  if (info.d_input > 0) {
    const int rc = vector_model(m, &info);
    free(file.raw);
    free(mem.raw);
    return rc;
  }
  CHECK(info.vocab_size > 0 && info.d_output == info.vocab_size && info.state_bytes > 0 && info.arch_name &&
        info.backend && info.struct_size == sizeof info);
  {
    rill_model_info small;
    memset(&small, 0xAB, sizeof small);
    small.struct_size = offsetof(rill_model_info, n_layer);
    CHECK(rill_model_get_info(m, &small) == RILL_OK);
    CHECK(small.d_model == info.d_model && small.n_layer == 0xABABABABu); /* nothing written past it */
  }
  V = info.vocab_size;
  want = (float*)malloc(V * 4 * sizeof(float));
  got = (float*)malloc(V * 4 * sizeof(float));
  REQUIRE(want && got);

  /* Sessions: step, errors leave the state as it was, state blobs, clone. */
  REQUIRE((s0 = new_session(m, &a0)) != NULL);
  REQUIRE((s1 = new_session(m, &a1)) != NULL);
  REQUIRE((s2 = new_session(m, &a2)) != NULL);
  CHECK(rill_session_step(s0, (int32_t)V, want, V) == RILL_TOKEN_RANGE);
  CHECK(rill_session_step(s0, 1, want, V - 1) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_step(NULL, 1, want, V) == RILL_INVALID_ARGUMENT);
  {
    const int32_t p[3] = {1, 2, 3};
    CHECK(rill_session_prefill(s0, p, 3, NULL, 0) == RILL_OK);
    CHECK(rill_session_step(s0, 4, want, V) == RILL_OK);
    CHECK(rill_session_reset(s0) == RILL_OK);
    for (i = 0; i < 3; ++i) CHECK(rill_session_step(s0, p[i], NULL, 0) == RILL_OK);
    CHECK(rill_session_step(s0, 4, got, V) == RILL_OK);
    CHECK(memcmp(want, got, V * sizeof(float)) == 0);
  }
  REQUIRE(block_alloc(&blob, rill_session_state_size(s0)));
  REQUIRE(block_alloc(&blob2, rill_session_state_size(s0)));
  CHECK(rill_session_state_copy_out(s0, blob.p, blob.size) == RILL_OK);
  CHECK(rill_session_state_copy_in(s1, blob.p, blob.size) == RILL_OK);
  blob.p[blob.size - 1] ^= 1;
  CHECK(rill_session_state_copy_in(s2, blob.p, blob.size) == RILL_STATE_MISMATCH);
  blob.p[blob.size - 1] ^= 1;
  CHECK(rill_session_state_copy_in(s2, blob.p, blob.size - 1) == RILL_STATE_MISMATCH);
  REQUIRE(block_alloc(&a3, a0.size));
  CHECK(rill_session_clone(s0, a3.p, a0.size - 64, &s3, &err) == RILL_ARENA_TOO_SMALL);
  REQUIRE(rill_session_clone(s0, a3.p, a0.size, &s3, &err) == RILL_OK);
  CHECK(rill_session_step(s0, 7, want, V) == RILL_OK);
  CHECK(rill_session_step(s1, 7, got, V) == RILL_OK);
  CHECK(memcmp(want, got, V * sizeof(float)) == 0);
  CHECK(rill_session_step(s3, 7, got, V) == RILL_OK);
  CHECK(memcmp(want, got, V * sizeof(float)) == 0);

  /* Batch: three sessions in one pass equal each stepped alone. s0, s1, s3 are in one state; s2 is
   * empty. */
  {
    rill_batch_options bo = rill_batch_default_options();
    rill_session* ss[3];
    const int32_t toks[3] = {5, 6, 7};
    bo.max_streams = 3;
    REQUIRE(rill_batch_footprint(m, &bo, &bytes) == RILL_OK);
    REQUIRE(block_alloc(&bmem, bytes));
    CHECK(rill_batch_init(m, &bo, bmem.p, bytes - 1, &batch, &err) == RILL_ARENA_TOO_SMALL);
    REQUIRE(rill_batch_init(m, &bo, bmem.p, bytes, &batch, &err) == RILL_OK);
    CHECK(rill_session_state_copy_out(s1, blob.p, blob.size) == RILL_OK);
    ss[0] = s1; ss[1] = s2; ss[2] = s1;
    CHECK(rill_batch_step(batch, ss, toks, 3, got, 3 * V) == RILL_INVALID_ARGUMENT); /* s1 twice */
    CHECK(rill_session_state_copy_out(s1, blob2.p, blob2.size) == RILL_OK);
    CHECK(memcmp(blob.p, blob2.p, blob.size) == 0);
    ss[0] = s0; ss[1] = s2; ss[2] = s3;
    CHECK(rill_batch_step(batch, ss, toks, 3, got, 3 * V) == RILL_OK);
    CHECK(rill_session_step(s1, toks[0], want, V) == RILL_OK);
    CHECK(memcmp(want, got, V * sizeof(float)) == 0);
    CHECK(rill_session_reset(s1) == RILL_OK);
    CHECK(rill_session_step(s1, toks[1], want + V, V) == RILL_OK);
    CHECK(memcmp(want + V, got + V, V * sizeof(float)) == 0);
    CHECK(memcmp(got + 2 * V, got, V * sizeof(float)) != 0 || toks[2] == toks[0]);
    /* Which stream was refused: s0 twice, then a token out of range; nothing changes. */
    {
      rill_status st[3] = {-7, -7, -7};
      const int32_t bad[3] = {5, (int32_t)V, 7};
      CHECK(rill_session_state_copy_out(s0, blob.p, blob.size) == RILL_OK);
      ss[0] = s0; ss[1] = s2; ss[2] = s0;
      CHECK(rill_batch_step_streams(batch, ss, toks, 3, got, 3 * V, st, RILL_BAD_STREAM_REFUSE_ALL) ==
            RILL_INVALID_ARGUMENT);
      CHECK(st[0] == RILL_OK && st[1] == RILL_OK && st[2] == RILL_INVALID_ARGUMENT);
      ss[2] = s3;
      CHECK(rill_batch_step_streams(batch, ss, bad, 3, got, 3 * V, st, RILL_BAD_STREAM_REFUSE_ALL) == RILL_TOKEN_RANGE);
      CHECK(st[0] == RILL_OK && st[1] == RILL_TOKEN_RANGE && st[2] == RILL_OK);
      CHECK(rill_batch_step_streams(batch, ss, bad, 3, got, 3 * V, NULL, RILL_BAD_STREAM_SKIP) == RILL_INVALID_ARGUMENT);
      CHECK(rill_batch_step_streams(batch, ss, bad, 3, got, 3 * V, st, 9) == RILL_INVALID_ARGUMENT);
      CHECK(rill_session_state_copy_out(s0, blob2.p, blob2.size) == RILL_OK);
      CHECK(memcmp(blob.p, blob2.p, blob.size) == 0);
    }
  }

  /* Text and sampling. */
  if (info.tokenizer != RILL_TOKENIZER_NONE) {
    char piece[64];
    size_t np = 0;
    CHECK(rill_tokenize(m, "ROMEO:", 6, NULL, 0, &n) == RILL_INVALID_ARGUMENT && n > 0);
    CHECK(rill_tokenize(m, "ROMEO:", 6, ids, 64, &n) == RILL_OK);
    CHECK(rill_detokenize(m, ids[0], piece, sizeof piece, &np) == RILL_OK && np > 0 && piece[0] == 'R');
  }
  REQUIRE(block_alloc(&smem, rill_sampler_footprint(V)));
  {
    rill_sampler_options po = rill_sampler_default_options();
    po.temperature = 0;
    CHECK(rill_sampler_init(&po, V, smem.p, smem.size - 1, &sampler) == RILL_ARENA_TOO_SMALL);
    REQUIRE(rill_sampler_init(&po, V, smem.p, smem.size, &sampler) == RILL_OK);
    for (i = 0; i < V; ++i) want[i] = (float)i == 3 ? 9.f : 0.f;
    want[3] = 9.f;
    CHECK(rill_sampler_sample(sampler, want, V, V) == 3);
    CHECK(rill_sampler_sample(sampler, want, V, 2) != 3);
    po.top_p = 2.f;
    CHECK(rill_sampler_init(&po, V, smem.p, smem.size, &sampler) == RILL_INVALID_ARGUMENT);
  }
  /* A model opened from a path: errors name the file. */
  CHECK(rill_model_open("/nonexistent/x.rill", NULL, &m, &err) == RILL_IO && m == NULL &&
        strstr(err.message, "/nonexistent/x.rill") != NULL);
  rill_model_close(NULL);

  free(want);
  free(got);
  free(file.raw); free(mem.raw); free(a0.raw); free(a1.raw); free(a2.raw); free(a3.raw);
  free(bmem.raw); free(blob.raw); free(blob2.raw); free(smem.raw);
  printf("capi_test: %d checks, %d failed\n", checks, failures);
  fflush(stdout);
  return failures ? 1 : 0;
}
