/* Streaming text from a rill model through the C API (rill/rill.h), in C99.
 *
 *   c_consumer MODEL.rill PROMPT [N_TOKENS [TEMPERATURE [SEED]]]
 *
 * Opens the model, places one session and one sampler in memory this program owns, feeds the prompt
 * with one prefill call, then samples and prints token by token. Nothing inside the loop allocates.
 * TEMPERATURE 0 is greedy decoding (the same text as `rill run --greedy`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill/rill.h"

/* RILL_ALIGN-aligned memory from malloc (C99 has no aligned_alloc). */
typedef struct {
  void* raw;
  void* p;
} block;

static int block_alloc(block* b, size_t bytes) {
  b->raw = malloc(bytes + RILL_ALIGN);
  if (!b->raw) return 0;
  b->p = (void*)(((uintptr_t)b->raw + RILL_ALIGN - 1) / RILL_ALIGN * RILL_ALIGN);
  return 1;
}

static int fail(const char* what, rill_status s, const rill_error* e) {
  fprintf(stderr, "c_consumer: %s: %s%s%s\n", what, rill_status_str(s), e && e->message[0] ? ": " : "",
          e ? e->message : "");
  return 1;
}

int main(int argc, char** argv) {
  rill_model* model = NULL;
  rill_session* session = NULL;
  rill_sampler* sampler = NULL;
  rill_model_info info;
  rill_error err;
  rill_status s;
  block arena = {NULL, NULL}, sampler_mem = {NULL, NULL};
  float* logits = NULL;
  int32_t* prompt = NULL;
  size_t arena_bytes = 0, n_prompt = 0, vocab, n_valid, i;
  long n_tokens = argc > 3 ? strtol(argv[3], NULL, 10) : 200;
  int rc = 1;

  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.rill PROMPT [N_TOKENS [TEMPERATURE [SEED]]]\n", argv[0]);
    return 2;
  }
  if (rill_version() / 10000 != RILL_VERSION_MAJOR) {
    fprintf(stderr, "c_consumer: built for rill %d.x, running with %s\n", RILL_VERSION_MAJOR, rill_version_string());
    return 1;
  }

  /* 1. The model: mapped and verified once. */
  {
    rill_model_options mo = rill_model_default_options();
    if ((s = rill_model_open(argv[1], &mo, &model, &err)) != RILL_OK) return fail("open", s, &err);
  }
  info.struct_size = sizeof info;
  if ((s = rill_model_get_info(model, &info)) != RILL_OK) goto done_status;
  if (info.tokenizer == RILL_TOKENIZER_NONE) {
    fprintf(stderr, "c_consumer: %s has no tokenizer\n", argv[1]);
    goto done;
  }
  vocab = info.vocab_size;
  /* A byte tokenizer has 256 real tokens; rows past them are padding the sampler must not pick. */
  n_valid = info.tokenizer == RILL_TOKENIZER_BYTES && vocab > 256 ? 256 : vocab;

  /* 2. One session: state + scratch in memory we own. */
  {
    rill_session_options so = rill_session_default_options();
    if ((s = rill_session_footprint(model, &so, &arena_bytes)) != RILL_OK) goto done_status;
    if (!block_alloc(&arena, arena_bytes)) goto done;
    if ((s = rill_session_init(model, &so, arena.p, arena_bytes, &session, &err)) != RILL_OK) {
      rc = fail("session", s, &err);
      goto done;
    }
  }
  /* 3. A sampler (greedy when the temperature is 0). */
  {
    rill_sampler_options po = rill_sampler_default_options();
    size_t bytes = rill_sampler_footprint(vocab);
    if (argc > 4) po.temperature = (float)strtod(argv[4], NULL);
    po.seed = argc > 5 ? (uint64_t)strtoull(argv[5], NULL, 10) : 1;
    if (!block_alloc(&sampler_mem, bytes)) goto done;
    if ((s = rill_sampler_init(&po, vocab, sampler_mem.p, bytes, &sampler)) != RILL_OK) goto done_status;
  }
  logits = (float*)malloc(vocab * sizeof(float));
  if (!logits) goto done;

  /* 4. The prompt: tokenize (ask for the count first), then one prefill call. */
  if ((s = rill_tokenize(model, argv[2], strlen(argv[2]), NULL, 0, &n_prompt)) != RILL_OK && s != RILL_INVALID_ARGUMENT)
    goto done_status;
  if (n_prompt == 0) {
    fprintf(stderr, "c_consumer: the prompt is empty\n");
    goto done;
  }
  prompt = (int32_t*)malloc(n_prompt * sizeof(int32_t));
  if (!prompt) goto done;
  if ((s = rill_tokenize(model, argv[2], strlen(argv[2]), prompt, n_prompt, &n_prompt)) != RILL_OK) goto done_status;
  if ((s = rill_session_prefill(session, prompt, n_prompt, logits, vocab)) != RILL_OK) goto done_status;
  fputs(argv[2], stdout);

  /* 5. Generate: sample, print, step. No allocation from here on. */
  for (i = 0; i < (size_t)n_tokens; ++i) {
    char piece[256];
    size_t n_piece = 0;
    const int32_t tok = rill_sampler_sample(sampler, logits, vocab, n_valid);
    if (tok < 0) goto done;
    if (rill_detokenize(model, tok, piece, sizeof piece, &n_piece) == RILL_OK) fwrite(piece, 1, n_piece, stdout);
    fflush(stdout);
    if ((s = rill_session_step(session, tok, logits, vocab)) != RILL_OK) goto done_status;
  }
  fputc('\n', stdout);
  rc = 0;
  goto done;

done_status:
  rc = fail("step", s, NULL);
done:
  free(prompt);
  free(logits);
  free(sampler_mem.raw);
  free(arena.raw);
  rill_model_close(model);
  return rc;
}
