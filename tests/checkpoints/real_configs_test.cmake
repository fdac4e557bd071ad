# For each real config: random weights of its real shapes in its own layout (CKPTS/<name>, made by
# make_all.cmake), rill convert with the tokenizer found beside it, inspect, rill run --prompt streaming
# text, and the model's embedded tokenizer tokenizing as the tokenizer file does.
set(prompt "The Eiffel tower is in")
foreach(name mamba-130m-hf mamba2-130m mamba2-130m-hf rwkv7-0.1B-world)
  set(ckpt ${CKPTS}/${name})
  set(dir ${WORK}/${name})
  file(MAKE_DIRECTORY ${WORK})
  execute_process(COMMAND ${RILL} convert ${ckpt} -o ${dir}.rill --dtype q8 -q --force RESULT_VARIABLE rc
                  ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "${name}: convert failed: ${err}")
  endif()
  execute_process(COMMAND ${RILL} inspect ${dir}.rill OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(name MATCHES "rwkv")
    set(want "tokenizer     world (RWKV vocabulary, longest match), from rwkv_vocab_v20230424.txt, end of text = 0")
    set(tokfile ${ckpt}/rwkv_vocab_v20230424.txt)
  else()
    set(want "tokenizer     bpe (byte-level BPE), from tokenizer.json, 50009 merges, 25 added tokens, NFC, end of text = 0")
    set(tokfile ${ckpt}/tokenizer.json)
  endif()
  string(FIND "${out}" "${want}" at)
  if(rc OR at EQUAL -1)
    message(FATAL_ERROR "${name}: inspect does not show the embedded tokenizer (${want}):\n${out}")
  endif()
  execute_process(COMMAND ${RILL} run ${dir}.rill --prompt "${prompt}" -n 12 --seed 5 -t 1
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  string(FIND "${out}" "${prompt}" at)
  string(LENGTH "${out}" len)
  string(LENGTH "${prompt}" plen)
  if(rc OR NOT at EQUAL 0 OR NOT len GREATER plen)
    message(FATAL_ERROR "${name}: rill run --prompt did not stream text after the prompt (${rc}): ${out}${err}")
  endif()
  message(STATUS "${name}: ${out}")
  execute_process(COMMAND ${RILL} tokenize ${dir}.rill --prompt "${prompt} <|endoftext|> café 日本" -q
                  OUTPUT_VARIABLE a RESULT_VARIABLE rc1)
  execute_process(COMMAND ${RILL} tokenize --tokenizer ${tokfile} --prompt "${prompt} <|endoftext|> café 日本" -q
                  OUTPUT_VARIABLE b RESULT_VARIABLE rc2)
  if(rc1 OR rc2 OR NOT a STREQUAL b OR a STREQUAL "")
    message(FATAL_ERROR "${name}: the model's tokenizer (${a}) differs from the file's (${b})")
  endif()
  file(REMOVE ${dir}.rill)
endforeach()

# The Mamba-2 hybrids (their tokenizers' files are not available here: converted with --tokenizer none
# and stepped from token ids). inspect must report the real shape's state at the default context (the
# config's max_position_embeddings capped at 4096) and at a chosen one; run must stream; a prompt longer
# than a small --max-context must be refused with the message that says so, and --slide must run past it.
foreach(entry "granite-4.0-h-350m;mamba2_hybrid;4096" "granite-4.0-h-1b;mamba2_hybrid;4096"
              "nemotron-h-4b-base-8k;mamba2_hybrid;4096")
  list(GET entry 0 name)
  list(GET entry 2 ctx)
  set(ckpt ${CKPTS}/${name})
  set(dir ${WORK}/${name})
  file(MAKE_DIRECTORY ${WORK})
  execute_process(COMMAND ${RILL} convert ${ckpt} -o ${dir}.rill --dtype q8 -q --force --tokenizer none
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc)
    message(FATAL_ERROR "${name}: convert failed: ${err}")
  endif()
  execute_process(COMMAND ${RILL} inspect ${dir}.rill OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  string(FIND "${out}" "architecture  mamba2_hybrid" a1)
  string(FIND "${out}" "max context   ${ctx} tokens per stream" a2)
  if(rc OR a1 EQUAL -1 OR a2 EQUAL -1)
    message(FATAL_ERROR "${name}: inspect does not show a mamba2_hybrid of context ${ctx}:\n${out}")
  endif()
  string(REGEX MATCH "max context[^\n]*\n[^\n]*" ctx_lines "${out}")
  message(STATUS "${name}: ${ctx_lines}")
  execute_process(COMMAND ${RILL} run ${dir}.rill --tokens 1,2,3,4 -n 6 --seed 5 -t 2
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  string(REGEX MATCHALL "[0-9]+" ids "${out}")
  list(LENGTH ids n_ids)
  if(rc OR NOT n_ids EQUAL 6)
    message(FATAL_ERROR "${name}: rill run did not stream 6 tokens (${rc}): ${out}${err}")
  endif()
  message(STATUS "${name}: ${out} ${err}")
  execute_process(COMMAND ${RILL} run ${dir}.rill --tokens 1,2,3,4,5,6,7,8,9 -n 2 --max-context 8 -t 2
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  string(FIND "${err}" "do not fit the model's context of 8" at)
  if(NOT rc EQUAL 1 OR at EQUAL -1)
    message(FATAL_ERROR "${name}: a 9-token prompt at --max-context 8 was not refused as it should be (${rc}): ${err}")
  endif()
  execute_process(COMMAND ${RILL} run ${dir}.rill --tokens 1,2,3,4,5,6,7,8,9 -n 2 --max-context 8 --slide -t 2
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${name}: --slide did not run past --max-context 8 (${rc}): ${err}")
  endif()
  file(REMOVE ${dir}.rill)
endforeach()
