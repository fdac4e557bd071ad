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
  CHECK(sizeof(rill_model_options) == 28 && offsetof(rill_model_options, verify) == 12);
  CHECK(offsetof(rill_model_options, prefault) == 16 && offsetof(rill_model_options, lock_memory) == 20 &&
        offsetof(rill_model_options, max_context) == 24);
  CHECK(sizeof(rill_session_options) == 32 && offsetof(rill_session_options, pool) == 8);
  CHECK(offsetof(rill_session_options, prefault) == 16 && offsetof(rill_session_options, lock_memory) == 20 &&
        offsetof(rill_session_options, context_full) == 24);
  CHECK(sizeof(rill_batch_options) == 16 && offsetof(rill_batch_options, pool) == 8);
  CHECK(sizeof(rill_sampler_options) == 24 && offsetof(rill_sampler_options, seed) == 16);
  /* The released fields keep their offsets; d_input, d_output and max_context were appended. */
  CHECK(sizeof(rill_model_info) == 88 && offsetof(rill_model_info, weight_bytes) == 32 &&
        offsetof(rill_model_info, backend) == 64 && offsetof(rill_model_info, d_input) == 72 &&
        offsetof(rill_model_info, d_output) == 76 && offsetof(rill_model_info, max_context) == 80);
  CHECK(RILL_OK == 0 && RILL_ARENA_TOO_SMALL == 40 && RILL_TOKEN_RANGE == 80 && RILL_STATE_MISMATCH == 82 &&
        RILL_CONTEXT_FULL == 83);
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

/* `#if RILL_VERSION` means the header's version number (the status for a newer file format is
 * RILL_FORMAT_VERSION). */
#if !defined(RILL_VERSION) || RILL_VERSION != RILL_VERSION_NUMBER || RILL_VERSION < 100
#error "RILL_VERSION must be the header's version number"
#endif

/* Misuse: second releases and closes, handles used after them or never initialised, struct_size
 * above RILL_STRUCT_SIZE_MAX, null handles; the pool's thread options. Under ASan nothing here may
 * read freed memory. */
/* A model with a context limit (a Mamba-2 hybrid): max_context chosen at init, a full stream refused
 * with RILL_CONTEXT_FULL and its state unchanged, or slid past with RILL_CONTEXT_SLIDE. */
static int context_model(const block* file, const rill_model_info* info) {
  block mem, arena, a1, b0, b1;
  rill_model* m = NULL;
  rill_session* s = NULL;
  rill_model_info in4;
  rill_model_options mo = rill_model_default_options();
  rill_session_options so = rill_session_default_options();
  size_t bytes = 0, i, V = info->vocab_size;
  float* logits = (float*)malloc(V * sizeof(float));
  REQUIRE(logits != NULL);
  CHECK(info->arch == RILL_ARCH_MAMBA2_HYBRID && strcmp(info->arch_name, "mamba2_hybrid") == 0 &&
        info->max_context > 4);
  CHECK(mo.max_context == 0 && so.context_full == RILL_CONTEXT_REFUSE);
  mo.max_context = 4;
  REQUIRE(rill_model_footprint(file->p, file->size, &bytes, NULL) == RILL_OK && block_alloc(&mem, bytes));
  REQUIRE(rill_model_init(file->p, file->size, &mo, mem.p, bytes, &m, NULL) == RILL_OK);
  in4.struct_size = sizeof in4;
  REQUIRE(rill_model_get_info(m, &in4) == RILL_OK);
  CHECK(in4.max_context == 4 && in4.state_bytes < info->state_bytes);
  REQUIRE((s = new_session(m, &arena)) != NULL);
  for (i = 0; i < 4; ++i) CHECK(rill_session_step(s, (int32_t)i, logits, V) == RILL_OK);
  REQUIRE(block_alloc(&b0, rill_session_state_size(s)) && block_alloc(&b1, rill_session_state_size(s)));
  CHECK(rill_session_state_copy_out(s, b0.p, b0.size) == RILL_OK);
  CHECK(rill_session_step(s, 1, logits, V) == RILL_CONTEXT_FULL);
  CHECK(strcmp(rill_status_str(RILL_CONTEXT_FULL), "the stream holds max_context tokens (the session refuses more)") == 0);
  CHECK(rill_session_state_copy_out(s, b1.p, b1.size) == RILL_OK && memcmp(b0.p, b1.p, b0.size) == 0);
  so.context_full = RILL_CONTEXT_SLIDE;
  {
    rill_session* t = NULL;
    REQUIRE(rill_session_footprint(m, &so, &bytes) == RILL_OK && block_alloc(&a1, bytes));
    REQUIRE(rill_session_init(m, &so, a1.p, bytes, &t, NULL) == RILL_OK);
    for (i = 0; i < 9; ++i) CHECK(rill_session_step(t, (int32_t)i, logits, V) == RILL_OK);
    CHECK(rill_session_release(t) == RILL_OK);
    so.context_full = 7;
    t = NULL;
    CHECK(rill_session_init(m, &so, a1.p, bytes, &t, NULL) == RILL_INVALID_ARGUMENT && t == NULL);
    free(a1.raw);
  }
  CHECK(rill_session_release(s) == RILL_OK);
  CHECK(rill_model_release(m) == RILL_OK);
  free(logits);
  free(arena.raw);
  free(b0.raw);
  free(b1.raw);
  free(mem.raw);
  printf("context limit: refused at 4 tokens, state unchanged; slid past it\n");
  return failures ? 1 : 0;
}

static int misuse(const char* path) {
  rill_model *m = NULL, *m2 = NULL;
  rill_session* s = NULL;
  rill_batch* b = NULL;
  rill_sampler* sp = NULL;
  rill_pool* pool = NULL;
  rill_error err;
  rill_model_info info;
  block arena, bmem, smem, zero, big;
  size_t bytes = 0, n = 0;
  float logits[512];
  int32_t tok = 1;
  unsigned char info_buf[512];
  rill_model_info* wide = (rill_model_info*)(void*)info_buf;

  CHECK(RILL_MISUSE == 3 && RILL_FORMAT_VERSION == 21 && strstr(rill_status_str(RILL_MISUSE), "released") != NULL);
  REQUIRE(rill_model_open(path, NULL, &m, &err) == RILL_OK);
  info.struct_size = sizeof info;
  REQUIRE(rill_model_get_info(m, &info) == RILL_OK && info.struct_size == sizeof info);
  /* A newer program's larger info struct: this library says how much it filled, and zeroes the rest. */
  memset(info_buf, 0xAB, sizeof info_buf);
  wide->struct_size = sizeof info_buf;
  CHECK(rill_model_get_info(m, wide) == RILL_OK && wide->struct_size == sizeof(rill_model_info));
  CHECK(info_buf[sizeof(rill_model_info)] == 0 && info_buf[sizeof info_buf - 1] == 0);
  CHECK(wide->d_model == info.d_model);

  /* struct_size above the bound: refused without reading past the fields this library knows (the
   * struct below is exactly sizeof bytes of heap: ASan would see a read past it). */
  REQUIRE(block_alloc(&big, sizeof(rill_session_options)));
  {
    rill_session_options* so = (rill_session_options*)(void*)big.p;
    *so = rill_session_default_options();
    so->struct_size = RILL_STRUCT_SIZE_MAX + 1;
    CHECK(rill_session_footprint(m, so, &bytes) == RILL_INVALID_ARGUMENT);
    so->struct_size = 0xFFFFFFFFu;
    CHECK(rill_session_footprint(m, so, &bytes) == RILL_INVALID_ARGUMENT);
    info.struct_size = RILL_STRUCT_SIZE_MAX + 1;
    CHECK(rill_model_get_info(m, &info) == RILL_INVALID_ARGUMENT);
    memset(so, 0x5A, sizeof *so);
    rill_session_options_init(so, RILL_STRUCT_SIZE_MAX + 1); /* writes nothing */
    CHECK(so->struct_size == 0x5A5A5A5Au);
  }

  /* Null handles: RILL_INVALID_ARGUMENT from every call that acts on one; release/close/destroy: OK. */
  CHECK(rill_model_get_info(NULL, &info) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_footprint(NULL, NULL, &bytes) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_step(NULL, 1, NULL, 0) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_reset(NULL) == RILL_INVALID_ARGUMENT);
  CHECK(rill_session_state_size(NULL) == 0);
  CHECK(rill_batch_step(NULL, NULL, NULL, 1, NULL, 0) == RILL_INVALID_ARGUMENT);
  CHECK(rill_tokenize(NULL, "a", 1, &tok, 1, &n) == RILL_INVALID_ARGUMENT);
  CHECK(rill_sampler_sample(NULL, logits, 1, 1) == -1);
  CHECK(rill_model_close(NULL) == RILL_OK && rill_model_release(NULL) == RILL_OK);
  CHECK(rill_session_release(NULL) == RILL_OK && rill_batch_release(NULL) == RILL_OK);
  CHECK(rill_sampler_release(NULL) == RILL_OK && rill_pool_destroy(NULL) == RILL_OK);

  /* Memory that never held a handle. */
  REQUIRE(block_alloc(&zero, 4096));
  memset(zero.p, 0, 4096);
  CHECK(rill_session_step((rill_session*)(void*)zero.p, 1, NULL, 0) == RILL_MISUSE);
  CHECK(rill_model_get_info((rill_model*)(void*)zero.p, &info) == RILL_MISUSE);
  CHECK(rill_session_release((rill_session*)(void*)zero.p) == RILL_MISUSE);
  CHECK(rill_model_close((rill_model*)(void*)zero.p) == RILL_MISUSE);

  /* A session, a batch and a sampler, each released twice and used after. */
  {
    rill_session_options so = rill_session_default_options();
    rill_batch_options bo = rill_batch_default_options();
    rill_session* ss[1];
    REQUIRE(rill_session_footprint(m, &so, &bytes) == RILL_OK && block_alloc(&arena, bytes));
    REQUIRE(rill_session_init(m, &so, arena.p, bytes, &s, &err) == RILL_OK);
    REQUIRE(rill_batch_footprint(m, &bo, &bytes) == RILL_OK && block_alloc(&bmem, bytes));
    REQUIRE(rill_batch_init(m, &bo, bmem.p, bytes, &b, &err) == RILL_OK);
    REQUIRE(block_alloc(&smem, rill_sampler_footprint(16)));
    REQUIRE(rill_sampler_init(NULL, 16, smem.p, smem.size, &sp) == RILL_OK);
    CHECK(rill_session_release(s) == RILL_OK);
    CHECK(rill_session_release(s) == RILL_MISUSE);
    CHECK(rill_session_step(s, 1, NULL, 0) == RILL_MISUSE);
    CHECK(rill_session_reset(s) == RILL_MISUSE);
    CHECK(rill_session_state_size(s) == 0);
    ss[0] = s;
    CHECK(rill_batch_step(b, ss, &tok, 1, NULL, 0) == RILL_MISUSE); /* a released session in a batch */
    CHECK(rill_batch_release(b) == RILL_OK);
    CHECK(rill_batch_release(b) == RILL_MISUSE);
    CHECK(rill_batch_step(b, ss, &tok, 1, NULL, 0) == RILL_MISUSE);
    CHECK(rill_sampler_release(sp) == RILL_OK);
    CHECK(rill_sampler_release(sp) == RILL_MISUSE);
    CHECK(rill_sampler_sample(sp, logits, 16, 16) == -1 && rill_sampler_reseed(sp, 1) == RILL_MISUSE);
  }

  /* An opened model: release is for models in caller memory; closed twice; used after close. */
  CHECK(rill_model_release(m) == RILL_MISUSE);
  CHECK(rill_model_close(m) == RILL_OK);
  CHECK(rill_model_close(m) == RILL_MISUSE);
  info.struct_size = sizeof info;
  CHECK(rill_model_get_info(m, &info) == RILL_MISUSE);
  CHECK(rill_session_footprint(m, NULL, &bytes) == RILL_MISUSE);
  CHECK(rill_session_init(m, NULL, arena.p, arena.size, &s, &err) == RILL_MISUSE && strstr(err.message, "closed"));
  /* The closed handle is reused by the next open, live again. */
  REQUIRE(rill_model_open(path, NULL, &m2, &err) == RILL_OK);
  CHECK(rill_model_get_info(m2, &info) == RILL_OK);
  CHECK(rill_model_close(m2) == RILL_OK);

  /* Pools: destroyed twice; a destroyed pool in options; thread options checked. */
  {
    rill_pool_options po = rill_pool_default_options();
    rill_session_options so = rill_session_default_options();
    CHECK(po.threads == 1 && po.cpu_mask == 0 && po.sched_policy == -1 && po.sched_priority == 0);
    po.threads = 2;
    po.cpu_mask = 1; /* CPU 0 */
    po.sched_policy = 0; /* SCHED_OTHER */
    REQUIRE(rill_pool_create_with(&po, &pool, &err) == RILL_OK);
    CHECK(rill_pool_destroy(pool) == RILL_OK);
    CHECK(rill_pool_destroy(pool) == RILL_MISUSE);
    REQUIRE(rill_model_open(path, NULL, &m, &err) == RILL_OK);
    so.pool = pool;
    CHECK(rill_session_footprint(m, &so, &bytes) == RILL_MISUSE);
    CHECK(rill_model_close(m) == RILL_OK);
    po.sched_policy = 77;
    CHECK(rill_pool_create_with(&po, &pool, &err) == RILL_INVALID_ARGUMENT && pool == NULL);
    po.sched_policy = 1; /* SCHED_FIFO */
    po.sched_priority = 0;
    CHECK(rill_pool_create_with(&po, &pool, &err) == RILL_INVALID_ARGUMENT && strstr(err.message, "priority"));
    CHECK(rill_pool_create(0, &pool) == RILL_INVALID_ARGUMENT);
  }
  free(arena.raw); free(bmem.raw); free(smem.raw); free(zero.raw); free(big.raw);
  printf("capi_test (misuse): %d checks, %d failed\n", checks, failures);
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
  if (misuse(argv[1]) != 0) return 1;
  CHECK(rill_version() == RILL_VERSION_NUMBER);
  CHECK(strncmp(rill_version_string(), "0.1.0", 5) == 0);
  CHECK(strcmp(rill_status_str(RILL_ARENA_TOO_SMALL), "arena too small") == 0);
  CHECK(strcmp(rill_status_str(12345), "unknown status") == 0);

  /* Options: defaults, an older caller (struct ends early), a newer caller (unknown fields). */
  {
    rill_session_options so = rill_session_default_options();
    CHECK(so.struct_size == sizeof so && so.prefill_chunk == 64 && so.pool == NULL);
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
    unsigned char newer[40];
    rill_model_options* mo = (rill_model_options*)(void*)newer;
    memset(newer, 0, sizeof newer);
    rill_model_options_init(mo, sizeof newer);
    CHECK(mo->verify == 1 && mo->struct_size == sizeof newer);
    CHECK(rill_model_init(file.p, file.size, mo, mem.p, bytes, &m, &err) == RILL_OK);  /* zero tail: fine */
    newer[28] = 1;
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
  if (info.max_context > 0) {
    const int rc = context_model(&file, &info);
    free(file.raw);
    free(mem.raw);
    return rc;
  }
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
