// Converter: mismatched checkpoints fail with a message naming the cause; a failed run writes
// nothing and never replaces an existing file.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "arch_common.h"
#include "content.h"
#include "kernels/kernels.h"
#include "safetensors.h"
#include "test_util.h"

using namespace rill_test;
using json = nlohmann::json;

namespace {
// Copies a golden checkpoint and edits its config.json.
std::string with_config(TempDir& tmp, const std::string& name, void (*edit)(json&)) {
  const std::string dir = tmp.file("ck");
  copy_dir(golden_dir(name), dir);
  json j = rill::convert::parse_config(read_file(dir + "/config.json"));  // Python's Infinity too
  edit(j);
  write_file(dir + "/config.json", j.dump());
  return dir;
}
bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }
}  // namespace

TEST_SUITE("converter") {
  TEST_CASE("config/tensor mismatches name the tensor or field") {
    TempDir tmp;
    const std::string out = tmp.file("o.rill");
    SUBCASE("unknown config field") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["attention_layers"] = 4; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "attention_layers"));
    }
    SUBCASE("fewer layers in the config than in the checkpoint: unexpected tensors") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["num_hidden_layers"] = 1; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "unexpected tensor backbone.layers.1."));
    }
    SUBCASE("more layers in the config: missing tensors") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["num_hidden_layers"] = 3; });
      CHECK(contains(convert_ckpt(dir, out), "missing tensor backbone.layers.2.mixer.in_proj.weight"));
    }
    SUBCASE("wrong time_step_rank: mis-shaped x_proj and dt_proj") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["time_step_rank"] = 6; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "backbone.layers.0.mixer.x_proj.weight: expected [22, 80], got [21, 80]"));
      CHECK(contains(e, "dt_proj.weight"));
    }
    SUBCASE("conflicting spellings") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["d_model"] = 41; });
      CHECK(contains(convert_ckpt(dir, out), "\"hidden_size\" = 40 but \"d_model\" = 41"));
    }
    SUBCASE("untied config without lm_head") {
      const auto dir = with_config(tmp, "mamba1_hf_f16_tied", [](json& j) { j["tie_word_embeddings"] = false; });
      CHECK(contains(convert_ckpt(dir, out), "lm_head.weight is missing"));
    }
    SUBCASE("unsupported model type") {
      const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["model_type"] = "llama"; });
      CHECK(contains(convert_ckpt(dir, out), "\"llama\" is not supported"));
    }
    SUBCASE("missing shard") {
      const std::string dir = tmp.file("ck");
      copy_dir(golden_dir("mamba1_ssm_bf16_sharded"), dir);
      std::remove((dir + "/model-00002-of-00002.safetensors").c_str());
      CHECK(contains(convert_ckpt(dir, out), "model-00002-of-00002.safetensors, which is missing"));
    }
    SUBCASE("mamba2: heads not matching expand * hidden_size") {
      const auto dir = with_config(tmp, "mamba2_groups", [](json& j) { j["head_dim"] = 20; });
      CHECK(contains(convert_ckpt(dir, out), "num_heads * head_dim = 80"));
    }
    SUBCASE("mamba2: wrong n_groups: in_proj rows disagree") {
      const auto dir = with_config(tmp, "mamba2_groups", [](json& j) { j["n_groups"] = 1; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "backbone.layers.0.mixer.in_proj.weight: expected [228, 48], got [260, 48]"));
      CHECK(contains(e, "backbone.layers.0.mixer.conv1d.weight: expected [128, 1, 4], got [160, 1, 4]"));
      CHECK(contains(e, "d_mlp"));
    }
    SUBCASE("mamba2: wrong state_size mis-shapes in_proj and conv") {
      const auto dir = with_config(tmp, "mamba2_groups", [](json& j) { j["state_size"] = 8; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "backbone.layers.0.mixer.in_proj.weight: expected [228, 48], got [260, 48]"));
    }
    SUBCASE("mamba2: fewer heads than the checkpoint: conv and dt_bias mis-shaped") {
      const auto dir = with_config(tmp, "mamba2_groups", [](json& j) { j["num_heads"] = 2; j["head_dim"] = 48; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "backbone.layers.0.mixer.in_proj.weight: expected [258, 48], got [260, 48]"));
      CHECK(contains(e, "backbone.layers.0.mixer.dt_bias: expected [2], got [4]"));
    }
    SUBCASE("rwkv7: config disagreeing with tensor shapes names both values") {
      const auto dir = with_config(tmp, "rwkv7_fla_world", [](json& j) { j["head_dim"] = 32; });
      CHECK(contains(convert_ckpt(dir, out), "head_dim = 32 but the tensors say 64"));
    }
    SUBCASE("rwkv7: a hybrid with attention layers is refused") {
      const auto dir = with_config(tmp, "rwkv7_fla_world", [](json& j) { j["attn"] = json{{"layers", {1}}}; });
      CHECK(contains(convert_ckpt(dir, out), "\"attn\" is set"));
    }
    SUBCASE("rwkv6: config disagreeing with tensor shapes, attention_hidden_size apart, tied head, unknown key") {
      auto dir = with_config(tmp, "rwkv6_hf_world", [](json& j) { j["head_size"] = 32; });
      CHECK(contains(convert_ckpt(dir, out), "head_size = 32 but the tensors say 64"));
      dir = with_config(tmp, "rwkv6_hf_world", [](json& j) { j["attention_hidden_size"] = 256; });
      CHECK(contains(convert_ckpt(dir, out), "rill runs attention_hidden_size = hidden_size"));
      dir = with_config(tmp, "rwkv6_hf_world", [](json& j) { j["tie_word_embeddings"] = true; });
      CHECK(contains(convert_ckpt(dir, out), "tie_word_embeddings=true is not supported"));
      dir = with_config(tmp, "rwkv6_hf_world", [](json& j) { j["use_glu"] = true; });
      CHECK(contains(convert_ckpt(dir, out), "use_glu"));
    }
    SUBCASE("gated_deltanet: refused fields and shapes name what is wrong") {
      auto dir = with_config(tmp, "gated_deltanet_gva_tied", [](json& j) { j["attn"] = json{{"layers", {1}}}; });
      CHECK(contains(convert_ckpt(dir, out), "\"attn\" is set"));
      dir = with_config(tmp, "gated_deltanet_gva_tied", [](json& j) { j["use_gate"] = false; });
      CHECK(contains(convert_ckpt(dir, out), "use_gate=false"));
      dir = with_config(tmp, "gated_deltanet_gva_tied", [](json& j) { j["num_v_heads"] = 3; });
      CHECK(contains(convert_ckpt(dir, out), "num_v_heads 3 is not a multiple of num_heads 2"));
      dir = with_config(tmp, "gated_deltanet_gva_tied", [](json& j) { j["head_dim"] = 8; });
      CHECK(contains(convert_ckpt(dir, out), "model.layers.0.attn.q_proj.weight: expected [16, 48], got [32, 48]"));
      dir = with_config(tmp, "gated_deltanet_gva_tied", [](json& j) { j["expand_v"] = 1.7; });
      CHECK(contains(convert_ckpt(dir, out), "is not a whole number of values"));
    }
    SUBCASE("gla: refused fields and shapes name what is wrong") {
      auto dir = with_config(tmp, "gla_conv_tied", [](json& j) { j["feature_map"] = "relu"; });
      CHECK(contains(convert_ckpt(dir, out), "feature_map \"relu\" is not supported"));
      dir = with_config(tmp, "gla_conv_tied", [](json& j) { j["num_kv_heads"] = 1; });
      CHECK(contains(convert_ckpt(dir, out), "num_kv_heads different from num_heads"));
      dir = with_config(tmp, "gla_conv_tied", [](json& j) { j["clamp_min"] = -1; });
      CHECK(contains(convert_ckpt(dir, out), "clamp_min is not supported"));
      dir = with_config(tmp, "gla_conv_tied", [](json& j) { j["gate_low_rank_dim"] = 16; });
      CHECK(contains(convert_ckpt(dir, out), "gate_low_rank_dim = 16 but the tensors say 4"));
      dir = with_config(tmp, "gla_conv_tied", [](json& j) { j["use_short_conv"] = false; });
      CHECK(contains(convert_ckpt(dir, out), "model.layers.0.attn.q_conv1d.weight"));  // unexpected tensors named
    }
    SUBCASE("retnet: refused fields and shapes name what is wrong") {
      auto dir = with_config(tmp, "retnet_conv_tied", [](json& j) { j["feature_map"] = "relu"; });
      CHECK(contains(convert_ckpt(dir, out), "feature_map \"relu\" is not supported"));
      dir = with_config(tmp, "retnet_conv_tied", [](json& j) { j["num_kv_heads"] = 1; });
      CHECK(contains(convert_ckpt(dir, out), "num_kv_heads different from num_heads"));
      dir = with_config(tmp, "retnet_conv_tied", [](json& j) { j["expand_k"] = 1.0; });
      CHECK(contains(convert_ckpt(dir, out), "model.layers.0.attn.q_proj.weight: expected [48, 48], got [24, 48]"));
      dir = with_config(tmp, "retnet_conv_tied", [](json& j) { j["attn"] = json{{"layers", {1}}}; });
      CHECK(contains(convert_ckpt(dir, out), "\"attn\" is set"));
    }
    SUBCASE("a byte-fallback tokenizer.json beside a tokenizer.model: the SentencePiece model is read") {
      const std::string dir = tmp.file("ck");
      copy_dir(golden_dir("recurrent_gemma_tied_bf16"), dir);  // holds a SentencePiece tokenizer.model
      write_file(dir + "/tokenizer.json", R"({"version": "1.0", "model": {"type": "BPE", "byte_fallback": true,
        "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}})");
      const std::string ok = tmp.file("spm.rill");  // this subcase's one conversion that succeeds
      const std::string e = convert_ckpt(dir, ok);
      REQUIRE_MESSAGE(e.empty(), e);
      rill::LoadedModel lm;
      REQUIRE(rill::LoadedModel::open(ok.c_str(), rill::ModelOptions{}, &lm) == rill::Status::kOk);
      CHECK(lm.model().info().tokenizer == rill::TokenizerKind::kSentencePiece);
      // Alone, it is read as BPE with byte fallback: this one lacks the byte tokens, and says so.
      std::filesystem::remove(dir + "/tokenizer.model");
      CHECK(contains(convert_ckpt(dir, out), "byte fallback without a <0x00> token"));
    }
    SUBCASE("a byte-fallback tokenizer.json alone: read as such, the same ids as its SentencePiece model") {
      const std::string dir = tmp.file("ck");
      copy_dir(golden_dir("recurrent_gemma_tied_bf16"), dir);
      const std::string spm = tmp.file("spm.rill"), bf = tmp.file("bf.rill");
      std::string e = convert_ckpt(dir, spm);
      REQUIRE_MESSAGE(e.empty(), e);
      std::filesystem::remove(dir + "/tokenizer.model");
      const std::string fallback = src_dir() + "/tests/tokenizer/byte_fallback/from_spm.json";
      std::filesystem::copy_file(fallback, dir + "/tokenizer.json");
      e = convert_ckpt(dir, bf);
      REQUIRE_MESSAGE(e.empty(), e);
      rill::LoadedModel a, b;
      REQUIRE(rill::LoadedModel::open(spm.c_str(), rill::ModelOptions{}, &a) == rill::Status::kOk);
      REQUIRE(rill::LoadedModel::open(bf.c_str(), rill::ModelOptions{}, &b) == rill::Status::kOk);
      CHECK(b.model().info().tokenizer == rill::TokenizerKind::kBpeByteFallback);
      const std::string text = "Thou art more lovely, caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xe2\x96\x81x\n  y";
      std::vector<int32_t> ia(256), ib(256);
      size_t na = 0, nb = 0;
      REQUIRE(rill::tokenize(a.model(), text.data(), text.size(), ia.data(), ia.size(), &na) == rill::Status::kOk);
      REQUIRE(rill::tokenize(b.model(), text.data(), text.size(), ib.data(), ib.size(), &nb) == rill::Status::kOk);
      ia.resize(na);
      ib.resize(nb);
      CHECK(ia == ib);
      CHECK(na > 20);  // characters missing from the small vocabulary went through byte tokens
      // What rill does not implement is refused by name.
      std::string j = read_file(fallback);
      auto with = [&](const std::string& from, const std::string& to) {
        std::string k = j;
        const size_t at = k.find(from);
        REQUIRE(at != std::string::npos);
        k.replace(at, from.size(), to);
        write_file(dir + "/tokenizer.json", k);
        return convert_ckpt(dir, out);
      };
      CHECK(contains(with("\"pre_tokenizer\": null", "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": "
                          "\"\u2581\", \"prepend_scheme\": \"first\", \"split\": true}"),
                     "Metaspace split = true is not supported"));
      CHECK(contains(with("\"normalizer\": {", "\"normalizer\": null, \"x\": {"), "spaces must become U+2581"));
      CHECK(contains(with("\"dropout\": null", "\"dropout\": 0.1"), "BPE dropout is not supported"));
      CHECK(contains(with("\"type\": \"Fuse\"", "\"type\": \"Lowercase\""), "decoder {\"type\":\"Lowercase\"}"));
    }
    SUBCASE("rwkv7: a malformed world vocabulary names the line") {
      const std::string dir = tmp.file("ck");
      copy_dir(golden_dir("rwkv7_fla_world"), dir);
      std::string v = read_file(dir + "/rwkv_vocab_v20230424.txt");
      v += "200 'abc' 3\n";  // id beyond the 131-row vocabulary
      write_file(dir + "/rwkv_vocab_v20230424.txt", v);
      CHECK(contains(convert_ckpt(dir, out), "rwkv_vocab_v20230424.txt:114: token id 200 is outside [1, 131)"));
      write_file(dir + "/rwkv_vocab_v20230424.txt", "1 'ab' 3\n");
      CHECK(contains(convert_ckpt(dir, out), ":1: literal has 2 bytes, the line says 3"));
      write_file(dir + "/rwkv_vocab_v20230424.txt", "1 'ab 2\n");
      CHECK(contains(convert_ckpt(dir, out), ":1: malformed literal"));
    }
    SUBCASE("mamba2: norm_before_gate is refused") {
      const auto dir = with_config(tmp, "mamba2_groups", [](json& j) { j["norm_before_gate"] = true; });
      CHECK(contains(convert_ckpt(dir, out), "norm_before_gate"));
    }
    SUBCASE("unsupported --dtype") { CHECK(contains(convert_ckpt(golden_dir("mamba1_awkward"), out, "q3"), "q3")); }
    CHECK(!file_exists(out));
  }

  TEST_CASE("recurrent_gemma: config fields that change the math are read or refused by name") {
    TempDir tmp;
    const std::string out = tmp.file("o.rill");
    const char* rg = "recurrent_gemma_awkward";
    SUBCASE("another activation") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["hidden_activation"] = "relu"; });
      CHECK(contains(convert_ckpt(dir, out), "hidden_activation \"relu\" is not supported"));
    }
    SUBCASE("RoPE scaling") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2}}; });
      CHECK(contains(convert_ckpt(dir, out), "rope_scaling.rope_type \"linear\" is not supported"));
    }
    SUBCASE("a rotary factor that does not cut heads evenly") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["partial_rotary_factor"] = 0.3; });
      CHECK(contains(convert_ckpt(dir, out), "partial_rotary_factor"));
    }
    SUBCASE("an unknown block type") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["block_types"] = {"recurrent", "mlp"}; });
      CHECK(contains(convert_ckpt(dir, out), "block_types entry \"mlp\""));
    }
    SUBCASE("a pattern that disagrees with the tensors") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["block_types"] = {"recurrent", "attention"}; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "missing tensor model.layers.1.temporal_block.q_proj.weight"));
      CHECK(contains(e, "missing tensor model.layers.2.temporal_block.linear_y.weight"));
    }
    SUBCASE("heads that do not make up the hidden size") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["head_dim"] = 16; });
      CHECK(contains(convert_ckpt(dir, out), "head_dim 16 != hidden_size 60"));
    }
    SUBCASE("an unknown field") {
      const auto dir = with_config(tmp, rg, [](json& j) { j["sliding_window"] = 4096; });
      CHECK(contains(convert_ckpt(dir, out), "sliding_window"));
    }
    SUBCASE("a --kv-dtype that is not f32 or f16") {
      rill::convert::Options o;
      o.input_dir = golden_dir(rg);
      o.output = out;
      o.kv_dtype = "q8";
      CHECK_THROWS_WITH_AS(rill::convert::run(o), doctest::Contains("--kv-dtype q8"), std::exception);
    }
    CHECK(!file_exists(out));
  }

  TEST_CASE("Mamba-2 hybrids: mixture-of-experts, unknown kinds and fields are refused by name; max_context") {
    TempDir tmp;
    const std::string out = tmp.file("o.rill");
    const char* granite = "granite_hybrid_nope";
    const char* nemotron = "nemotron_h_bf16";
    SUBCASE("a Granite mixture of experts") {
      const auto dir = with_config(tmp, granite, [](json& j) { j["num_local_experts"] = 8; });
      CHECK(contains(convert_ckpt(dir, out), "num_local_experts > 0 is a mixture-of-experts Granite 4.0-H model"));
    }
    SUBCASE("a Nemotron-H mixture-of-experts block") {
      const auto dir = with_config(tmp, nemotron, [](json& j) { j["hybrid_override_pattern"] = "M-*M-ME-"; });
      CHECK(contains(convert_ckpt(dir, out), "block 6 is a mixture-of-experts layer (E)"));
    }
    SUBCASE("an unknown Granite layer type") {
      const auto dir = with_config(tmp, granite, [](json& j) { j["layer_types"][1] = "mlp"; });
      CHECK(contains(convert_ckpt(dir, out), "layer_types[1] is \"mlp\" (mamba or attention)"));
    }
    SUBCASE("a layer count that disagrees with the pattern") {
      const auto dir = with_config(tmp, nemotron, [](json& j) { j["num_hidden_layers"] = 9; });
      CHECK(contains(convert_ckpt(dir, out), "num_hidden_layers 9 differs from the 8 blocks"));
    }
    SUBCASE("a pattern that disagrees with the tensors") {
      const auto dir = with_config(tmp, nemotron, [](json& j) { j["hybrid_override_pattern"] = "M-*M-M-*"; });
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "backbone.layers.6.mixer.up_proj.weight"));
    }
    SUBCASE("another MLP activation, sliding windows, RoPE scaling") {
      auto dir = with_config(tmp, nemotron, [](json& j) { j["mlp_hidden_act"] = "gelu"; });
      CHECK(contains(convert_ckpt(dir, out), "mlp_hidden_act \"gelu\" is not supported"));
      dir = with_config(tmp, nemotron, [](json& j) { j["sliding_window"] = 512; });
      CHECK(contains(convert_ckpt(dir, out), "sliding_window is set"));
      dir = with_config(tmp, granite, [](json& j) { j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2}}; });
      CHECK(contains(convert_ckpt(dir, out), "rope_scaling is not supported"));
    }
    SUBCASE("an unknown field") {
      const auto dir = with_config(tmp, granite, [](json& j) { j["attn_layer_indices"] = {1}; });
      CHECK(contains(convert_ckpt(dir, out), "attn_layer_indices"));
    }
    SUBCASE("--max-context sets the default ring; else max_position_embeddings capped at 4096") {
      rill::convert::Options o;
      o.input_dir = golden_dir(granite);
      o.output = out;
      o.quiet = true;
      o.max_context = 300;
      rill::convert::run(o);
      rill::LoadedModel lm;
      REQUIRE(rill::LoadedModel::open(out.c_str(), rill::ModelOptions{}, &lm) == rill::Status::kOk);
      CHECK(lm.model().info().max_context == 300);
      const auto dir = with_config(tmp, granite, [](json& j) { j["max_position_embeddings"] = 131072; });
      REQUIRE(convert_ckpt(dir, tmp.file("big.rill")).empty());
      rill::LoadedModel big;
      REQUIRE(rill::LoadedModel::open(tmp.file("big.rill").c_str(), rill::ModelOptions{}, &big) == rill::Status::kOk);
      CHECK(big.model().info().max_context == 4096);
      std::remove(out.c_str());
    }
    CHECK(!file_exists(out));
  }

  TEST_CASE("an existing output is kept unless --force, and a failed run leaves no file behind") {
    TempDir tmp;
    const std::string out = tmp.file("o.rill");
    write_file(out, "precious");
    CHECK(contains(convert_ckpt(golden_dir("mamba1_awkward"), out, "f32", /*force=*/false), "exists"));
    CHECK(read_file(out) == "precious");
    const auto dir = with_config(tmp, "mamba1_awkward", [](json& j) { j["num_hidden_layers"] = 5; });
    CHECK(!convert_ckpt(dir, out, "f32", /*force=*/true).empty());
    CHECK(read_file(out) == "precious");
    CHECK(convert_ckpt(golden_dir("mamba1_awkward"), out, "f32", true).empty());
    CHECK(read_file(out) != "precious");
    // No temporary files remain.
    CHECK(std::system(("test -z \"$(ls " + tmp.path + " | grep tmp-)\"").c_str()) == 0);
  }

  TEST_CASE("f16 encoding: the vector path gives kernels::f32_to_f16's bits on ties, subnormals and overflow") {
    std::vector<float> v;
    for (uint32_t bits = 0x33000000u; bits < 0x47800000u; bits += 0x1357u) {  // 2^-25 .. 65536, both signs
      float f;
      std::memcpy(&f, &bits, 4);
      v.push_back(f), v.push_back(-f);
    }
    for (float f : {0.f, -0.f, 65504.f, 65519.99f, 65520.f, 1e30f, -1e30f, 5.96e-8f, 2.98e-8f, 2.9802326e-8f,
                    6.1035156e-5f, 6.1035152e-5f, 1.00048828125f, 1.00146484375f})  // ties round to even
      v.push_back(f);
    v.push_back(1.f);  // a length that leaves a tail past the blocks of 8
    std::vector<uint16_t> vec(v.size()), scalar(v.size());
    const double e1 = rill::convert::encode_f16(v.data(), v.size(), true, vec.data());
    const double e2 = rill::convert::encode_f16(v.data(), v.size(), false, scalar.data());
    size_t differ = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      CHECK(scalar[i] == rill::kernels::f32_to_f16(v[i]));
      differ += vec[i] != scalar[i];
    }
    CHECK(differ == 0);
    CHECK(v.size() > 20000);
    CHECK(std::isinf(e1) == std::isinf(e2));  // overflow to infinity makes both errors infinite
  }

  TEST_CASE("a weight that is NaN or infinite is refused by the tensor's name, nothing written") {
    // mamba1_awkward (f32) and mamba2_tied_bf16: one element of a matrix overwritten in place.
    struct Case {
      const char* ckpt;
      const char* tensor;
      uint32_t f32_bits;  // the value written, as f32 bits (the top half for bf16)
      const char* what;
    };
    for (const Case& c : {Case{"mamba1_awkward", "backbone.layers.1.mixer.in_proj.weight", 0x7fc00000u, "NaN"},
                          Case{"mamba1_awkward", "backbone.layers.0.mixer.out_proj.weight", 0xff800000u, "infinity"},
                          Case{"mamba2_tied_bf16", "backbone.layers.0.mixer.in_proj.weight", 0x7f800000u, "infinity"}}) {
      CAPTURE(c.tensor);
      TempDir tmp;
      const std::string dir = tmp.file("ck"), out = tmp.file("o.rill");
      copy_dir(golden_dir(c.ckpt), dir);
      std::string st = read_file(dir + "/model.safetensors");
      REQUIRE(st.size() > 8);
      uint64_t hlen = 0;
      std::memcpy(&hlen, st.data(), 8);
      const json h = json::parse(st.substr(8, hlen));
      REQUIRE(h.contains(c.tensor));
      const std::string dtype = h[c.tensor]["dtype"];
      const uint64_t at = 8 + hlen + h[c.tensor]["data_offsets"][0].get<uint64_t>() +
                          (dtype == "F32" ? 4 : 2) * 3;  // element 3
      if (dtype == "F32") {
        std::memcpy(&st[at], &c.f32_bits, 4);
      } else {
        REQUIRE(dtype == "BF16");
        const uint16_t top = static_cast<uint16_t>(c.f32_bits >> 16);
        std::memcpy(&st[at], &top, 2);
      }
      write_file(dir + "/model.safetensors", st);
      for (const char* dt : {"f32", "q8"}) {
        const std::string e = convert_ckpt(dir, out, dt);
        CHECK(contains(e, std::string(c.tensor) + " holds " + c.what + " at element 3"));
        CHECK(!file_exists(out));
      }
    }
  }

  TEST_CASE("safetensors headers: hostile values are refused with a message") {
    rill::convert::Checkpoint ck;
    auto parse = [&](const std::string& header, size_t data_bytes) -> std::string {
      std::string f(8, '\0');
      const uint64_t n = header.size();
      std::memcpy(&f[0], &n, 8);
      f += header + std::string(data_bytes, '\0');
      try {
        rill::convert::Checkpoint c;
        c.parse(reinterpret_cast<const uint8_t*>(f.data()), f.size(), "t.safetensors");
      } catch (const rill::convert::ConvertError& e) {
        return e.what();
      }
      return "";
    };
    CHECK(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8).empty());
    CHECK(contains(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4), "outside the data"));
    CHECK(contains(parse(R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16), "I64 is not supported"));
    CHECK(contains(parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "need 12"));
    CHECK(contains(parse(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", 8), "non-negative"));
    CHECK(contains(parse(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
                   "too large"));
    CHECK(contains(parse("{not json", 0), "not valid JSON"));
    std::string big(8, '\0');
    const uint64_t huge = 1ull << 40;
    std::memcpy(&big[0], &huge, 8);
    try {
      ck.parse(reinterpret_cast<const uint8_t*>(big.data()), big.size(), "big");
      CHECK(false);
    } catch (const rill::convert::ConvertError& e) {
      CHECK(contains(e.what(), "exceeds 100 MB"));
    }
  }
}

TEST_SUITE("converter") {
  TEST_CASE("vector models: bad S4D and vector-head configs are refused by name, nothing written") {
    TempDir tmp;
    const std::string out = tmp.file("o.rill");
    SUBCASE("pool other than none or mean") {
      const auto dir = with_config(tmp, "s4d_postnorm_none", [](json& j) { j["pool"] = "max"; });
      CHECK(contains(convert_ckpt(dir, out), "pool is \"max\""));
    }
    SUBCASE("d_input without d_output") {
      const auto dir = with_config(tmp, "s4d_postnorm_none", [](json& j) { j.erase("d_output"); });
      CHECK(contains(convert_ckpt(dir, out), "needs both d_input and d_output"));
    }
    SUBCASE("input_std not positive") {
      const auto dir = with_config(tmp, "s4d_prenorm_mean", [](json& j) { j["input_std"][1] = 0.0; });
      CHECK(contains(convert_ckpt(dir, out), "input_std holds 0.0 (each must be finite and > 0)"));
    }
    SUBCASE("input_mean of the wrong length") {
      const auto dir = with_config(tmp, "s4d_prenorm_mean", [](json& j) { j["input_mean"] = {1.0}; });
      CHECK(contains(convert_ckpt(dir, out), "input_mean must be a list of d_input = 3 numbers"));
    }
    SUBCASE("d_state disagreeing with the kernel tensors") {
      const auto dir = with_config(tmp, "s4d_postnorm_none", [](json& j) { j["d_state"] = 8; });
      CHECK(contains(convert_ckpt(dir, out), "s4_layers.0.kernel.C"));
    }
    SUBCASE("a vector-head Mamba whose encoder does not match d_input") {
      const auto dir = with_config(tmp, "mamba1_vector", [](json& j) {
        j["d_input"] = 4;
        j.erase("input_mean");
        j.erase("input_std");
      });
      CHECK(contains(convert_ckpt(dir, out), "encoder.weight"));
    }
    SUBCASE("a mode that discretizes to a non-finite value is refused, naming it") {
      const std::string dir = tmp.file("ck");
      copy_dir(golden_dir("s4d_postnorm_none"), dir);
      std::string st = read_file(dir + "/model.safetensors");
      rill::convert::Checkpoint ck;
      ck.parse(reinterpret_cast<const uint8_t*>(st.data()), st.size(), "model.safetensors");
      const auto* ai = ck.find("s4_layers.1.kernel.A_imag");
      REQUIRE(ai != nullptr);
      const size_t at = static_cast<size_t>(ai->data - reinterpret_cast<const uint8_t*>(st.data()));
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(&st[at], &nan, 4);  // channel 0, mode 0 of layer 1
      write_file(dir + "/model.safetensors", st);
      const std::string e = convert_ckpt(dir, out);
      CHECK(contains(e, "s4_layers.1.kernel.: channel 0 mode 0"));
    }
    CHECK(!file_exists(out));
  }
}
