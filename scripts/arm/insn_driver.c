/* The work whose instructions scripts/arm_insn_counts.sh counts under qemu: open a model, prefill
 * PREFILL tokens in one pass, then step DECODE tokens, on one thread, and nothing else (no sampling,
 * no text). Counting two runs that differ only in PREFILL or in DECODE and taking the difference leaves
 * the instructions per prefill or decode token, without the model's loading and verification.
 *
 *   insn_driver MODEL.rill PREFILL DECODE
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rill/rill.h"

static int fail(const char* what, rill_status s, const rill_error* e) {
  fprintf(stderr, "insn_driver: %s: %s%s%s\n", what, rill_status_str(s), e && e->message[0] ? ": " : "",
          e ? e->message : "");
  return 1;
}

int main(int argc, char** argv) {
  rill_model* model = NULL;
  rill_session* session = NULL;
  rill_model_info info;
  rill_error err;
  rill_status s;
  size_t arena_bytes = 0, i;
  void* raw;
  float* logits;
  int32_t* tokens;
  long prefill, decode;
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.rill PREFILL DECODE\n", argv[0]);
    return 2;
  }
  prefill = strtol(argv[2], NULL, 10);
  decode = strtol(argv[3], NULL, 10);
  {
    rill_model_options mo = rill_model_default_options();
    if ((s = rill_model_open(argv[1], &mo, &model, &err)) != RILL_OK) return fail("open", s, &err);
  }
  info.struct_size = sizeof info;
  if ((s = rill_model_get_info(model, &info)) != RILL_OK) return fail("info", s, NULL);
  {
    rill_session_options so = rill_session_default_options();
    so.prefill_chunk = prefill > 0 ? (uint32_t)prefill : so.prefill_chunk; /* the prompt in one pass */
    if ((s = rill_session_footprint(model, &so, &arena_bytes)) != RILL_OK) return fail("footprint", s, NULL);
    raw = malloc(arena_bytes + RILL_ALIGN);
    logits = (float*)malloc(info.vocab_size * sizeof(float));
    tokens = (int32_t*)malloc((size_t)(prefill + decode + 1) * sizeof(int32_t));
    if (!raw || !logits || !tokens) return 1;
    if ((s = rill_session_init(model, &so, (void*)(((uintptr_t)raw + RILL_ALIGN - 1) / RILL_ALIGN * RILL_ALIGN),
                               arena_bytes, &session, &err)) != RILL_OK)
      return fail("session", s, &err);
  }
  for (i = 0; i < (size_t)(prefill + decode); ++i) tokens[i] = (int32_t)((i * 7919u + 11u) % info.vocab_size);
  if (prefill > 0 && (s = rill_session_prefill(session, tokens, (size_t)prefill, logits, info.vocab_size)) != RILL_OK)
    return fail("prefill", s, NULL);
  for (i = 0; i < (size_t)decode; ++i)
    if ((s = rill_session_step(session, tokens[prefill + (long)i], logits, info.vocab_size)) != RILL_OK)
      return fail("step", s, NULL);
  /* The library's load address, for symbolizing a profile: rill_version's address, as the guest sees it. */
  printf("logit0 %g rill_version %p\n", (double)logits[0], (void*)(uintptr_t)&rill_version);
  rill_session_release(session);
  free(tokens);
  free(logits);
  free(raw);
  rill_model_close(model);
  return 0;
}
