#!/usr/bin/env bash
# Rebuilds the committed seed corpora from the golden fixtures (needs build/bin/rill).
set -euo pipefail
cd "$(dirname "$0")/../.."
rill=build/bin/rill
c=tests/fuzz/corpus
keep=$(mktemp -d); cp $c/*/regress_* $c/tokenizer/*.txt $keep/ 2>/dev/null || true
rm -rf $c && mkdir -p $c/model $c/checkpoint $c/state $c/tokenizer
tmp=$(mktemp -d); trap 'rm -rf $tmp' EXIT
$rill convert tests/golden/mamba1_awkward -o $tmp/a.rill -q
$rill convert tests/golden/mamba1_ssm_bf16_sharded -o $tmp/b.rill -q --dtype f16
$rill convert tests/fuzz/byte_model -o $tmp/c.rill -q
$rill convert tests/golden/mamba2_groups -o $tmp/d.rill -q --dtype f16
$rill convert tests/fuzz/rwkv7_world_tiny -o $tmp/e.rill -q --dtype f16
$rill convert tests/golden/rwkv7_blink_bf16 -o $tmp/f.rill -q --dtype f16
cp $tmp/e.rill $c/model/rwkv7_world_tiny_f16.bin
cp $tmp/f.rill $c/model/rwkv7_blink_f16.bin
$rill convert tests/golden/rwkv6_blink_bf16 -o $c/model/rwkv6_blink_f16.bin -q --dtype f16
$rill convert tests/golden/gated_deltanet_gva_tied -o $c/model/gated_deltanet_f16.bin -q --dtype f16
$rill convert tests/golden/gated_deltanet_gva_tied -o $c/model/gated_deltanet_q8.bin -q --dtype q8
$rill convert tests/golden/gla_conv_tied -o $c/model/gla_f16.bin -q --dtype f16
$rill convert tests/golden/retnet_conv_tied -o $c/model/retnet_f16.bin -q --dtype f16
cp $tmp/a.rill $c/model/awkward_f32.bin
cp $tmp/d.rill $c/model/mamba2_groups_f16.bin
cp $tmp/b.rill $c/model/ssm_sharded_f16.bin
cp $tmp/c.rill $c/model/bytes_f16.bin
head -c 3000 $tmp/c.rill > $c/model/bytes_truncated.bin
# Quantized models of every architecture (int8 per row, int4 in groups of 32 and 64).
for q in "tests/golden/mamba1_hf_f16_tied mamba1" "tests/golden/mamba2_tied_bf16 mamba2" "tests/fuzz/rwkv7_world_tiny rwkv7" \
         "tests/golden/rwkv6_blink_bf16 rwkv6"; do
  set -- $q
  $rill convert $1 -o $c/model/${2}_q8.bin -q --dtype q8
  $rill convert $1 -o $c/model/${2}_q4.bin -q --dtype q4
done
$rill convert tests/golden/mamba2_tied_bf16 -o $c/model/mamba2_q4g64.bin -q --dtype q4 --group 64
# Vector models: S4D (pooled, input standardization) and Mamba with vector heads.
$rill convert tests/golden/s4d_prenorm_mean -o $c/model/s4d_mean_f32.bin -q
$rill convert tests/golden/s4d_prenorm_none_wide -o $c/model/s4d_q8.bin -q --dtype q8
$rill convert tests/golden/mamba1_vector -o $c/model/mamba1_vector.bin -q
# RecurrentGemma: mixed layer kinds, an f32 and an f16 key/value ring, quantized projections.
$rill convert tests/golden/recurrent_gemma_awkward -o $c/model/recurrent_gemma_f16.bin -q --dtype f16 --kv-dtype f32
$rill convert tests/golden/recurrent_gemma_tied_bf16 -o $c/model/recurrent_gemma_q8.bin -q --dtype q8
$rill convert tests/golden/recurrent_gemma_tied_bf16 -o $c/model/recurrent_gemma_q4.bin -q --dtype q4
# A byte-fallback BPE tokenizer.json (format 1.7's tokenizer kind) in place of the SentencePiece model.
bf=$tmp/bf && cp -r tests/golden/recurrent_gemma_tied_bf16 $bf && rm $bf/tokenizer.model
cp tests/tokenizer/byte_fallback/from_spm.json $bf/tokenizer.json
$rill convert $bf -o $c/model/recurrent_gemma_byte_fallback_f16.bin -q --dtype f16
# Mamba-2 hybrids: mixer, attention and MLP blocks, a context limit, an f32 ring and quantized projections.
$rill convert tests/golden/nemotron_h_bf16 -o $c/model/nemotron_h_f16.bin -q --dtype f16 --kv-dtype f32
$rill convert tests/golden/granite_hybrid_rope_bf16 -o $c/model/granite_hybrid_f16.bin -q --dtype f16
$rill convert tests/golden/nemotron_h_bf16 -o $c/model/nemotron_h_q8.bin -q --dtype q8
$rill convert tests/golden/nemotron_h_bf16 -o $c/model/nemotron_h_q4.bin -q --dtype q4
for d in tests/golden/granite_hybrid_rope_bf16 tests/golden/nemotron_h_bf16 tests/golden/recurrent_gemma_tied_bf16 tests/golden/mamba1_awkward tests/golden/mamba1_hf_f16_tied tests/fuzz/byte_model tests/golden/mamba2_tied_bf16 \
         tests/fuzz/rwkv7_world_tiny tests/golden/s4d_postnorm_none tests/golden/mamba2_vector; do
  { cat $d/config.json; printf '\0'; cat $d/model.safetensors; } > $c/checkpoint/$(basename $d).bin
done
{ cat tests/golden/mamba1_ssm_bf16_sharded/config.json; printf '\0'; cat tests/golden/mamba1_ssm_bf16_sharded/model-00002-of-00002.safetensors; } > $c/checkpoint/ssm_shard2.bin
printf '\x01' > $c/state/valid.bin
printf '\x01\x10\x00\xff' > $c/state/patch_header.bin
printf '\x01\x50\x00\x01' > $c/state/patch_payload.bin
printf 'RLST\x01\x00\x00\x00' > $c/state/raw_header.bin
printf 'ROMEO:\nBut soft, what light' > $c/tokenizer/text.bin
printf '\x00\xff\xc3\xa9\xe2\x82\xac\n' > $c/tokenizer/bytes.bin
cp tests/golden/rwkv7_fla_world/tokenizer_text.bin $c/tokenizer/world.bin
cp $keep/regress_*u64* $c/model/ 2>/dev/null || true
cp $keep/regress_reserved* $c/state/ 2>/dev/null || true
cp $keep/*.txt $c/tokenizer/ 2>/dev/null || true  # hand-written texts (NFC, emoji, code, special tokens)
rm -rf $keep
du -sh $c
