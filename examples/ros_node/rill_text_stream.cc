#include "rill_text_stream.h"

#include <vector>

#include "rill/extension.hpp"

namespace rill_ros {

struct TextStream::Impl {
  TextStreamOptions opts;
  rill::LoadedModel model;
  rill::ThreadPool* pool = nullptr;
  rill::OwnedSession session;
  rill::ModelInfo info;
  std::vector<float> logits;
  std::vector<rill::Sampler::Candidate> candidates;
  rill::Sampler sampler;
  std::vector<int32_t> tokens;
  size_t n_valid = 0;  // token ids the sampler may pick (a byte tokenizer's padding rows excluded)
  ~Impl() { rill::ThreadPool::destroy(pool); }
};

TextStream::TextStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TextStream::~TextStream() = default;

std::unique_ptr<TextStream> TextStream::open(const TextStreamOptions& o, std::string* error) {
  rill::LoadedModel lm;
  rill::Error e;
  if (rill::LoadedModel::open(o.model_path.c_str(), rill::ModelOptions{}, &lm, &e) != rill::Status::kOk) {
    *error = o.model_path + ": " + e.message;
    return nullptr;
  }
  return open(std::move(lm), o, error);
}

std::unique_ptr<TextStream> TextStream::open(rill::LoadedModel&& model, const TextStreamOptions& o,
                                             std::string* error) {
  auto im = std::make_unique<Impl>();
  im->opts = o;
  im->model = std::move(model);
  rill::Error e;
  im->info = im->model.model().info();
  if (im->info.tokenizer == rill::TokenizerKind::kNone) {
    *error = o.model_path + ": the model has no tokenizer, so it cannot take text";
    return nullptr;
  }
  if (o.threads > 1 && rill::ThreadPool::create(o.threads, &im->pool) != rill::Status::kOk) {
    *error = "cannot create " + std::to_string(o.threads) + " threads";
    return nullptr;
  }
  rill::SessionOptions so;
  so.pool = im->pool;
  if (rill::OwnedSession::create(im->model.model(), so, &im->session, &e) != rill::Status::kOk) {
    *error = std::string("session: ") + e.message;
    return nullptr;
  }
  const size_t V = im->info.vocab_size;
  im->n_valid = im->info.tokenizer == rill::TokenizerKind::kBytes && V > 256 ? 256 : V;
  im->logits.resize(V);
  im->candidates.resize(rill::Sampler::scratch_count(V));
  rill::SamplerParams sp;
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.seed = o.seed;
  if (im->sampler.init(sp, im->candidates.data(), im->candidates.size()) != rill::Status::kOk) {
    *error = "bad sampling parameters (temperature >= 0, top_k >= 0, 0 < top_p <= 1)";
    return nullptr;
  }
  return std::unique_ptr<TextStream>(new TextStream(std::move(im)));
}

bool TextStream::respond(const std::string& text, std::string* reply, std::string* error) {
  Impl& im = *impl_;
  reply->clear();
  if (text.empty()) return true;
  const rill::Model& m = im.model.model();
  size_t n = 0;
  rill::Status s = rill::tokenize(m, text.data(), text.size(), nullptr, 0, &n);
  im.tokens.resize(n);
  if (n > 0) s = rill::tokenize(m, text.data(), text.size(), im.tokens.data(), n, &n);
  if (s != rill::Status::kOk) {
    *error = std::string("tokenize: ") + rill::status_str(s);
    return false;
  }
  rill::Session& session = im.session.session();
  if ((s = session.prefill(im.tokens.data(), n, im.logits.data(), im.logits.size())) != rill::Status::kOk) {
    *error = std::string("prefill: ") + rill::status_str(s);
    return false;
  }
  char piece[512];
  for (uint32_t i = 0; i < im.opts.max_tokens; ++i) {
    const int32_t tok = im.sampler.sample(im.logits.data(), im.logits.size(), im.n_valid);
    if (tok < 0) {
      *error = "sampling failed";
      return false;
    }
    // The token enters the state either way, so the next input continues after it.
    if ((s = session.step(tok, im.logits.data(), im.logits.size())) != rill::Status::kOk) {
      *error = std::string("step: ") + rill::status_str(s);
      return false;
    }
    if (tok == im.info.eos_id) break;
    size_t len = 0;
    if (rill::detokenize(m, tok, piece, sizeof piece, &len) == rill::Status::kOk) reply->append(piece, len);
  }
  return true;
}

void TextStream::reset() { impl_->session.session().reset(); }
const rill::ModelInfo& TextStream::info() const { return impl_->info; }

}  // namespace rill_ros
