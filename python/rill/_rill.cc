// rill._rill: the C++ runtime and converter for Python (pybind11), wrapped by rill/__init__.py.
//
// Thin on purpose: every call goes to the C++ API (rill.hpp, extension.hpp, convert.hpp), nothing is
// re-implemented. Arrays in are checked (dtype, shape, C-contiguous) before anything runs; outputs
// are written by the runtime straight into NumPy arrays (a new one per call, or the caller's `out=`).
// The GIL is released around every call that computes. A failed call raises the exception class
// __init__.py registered for its Status, with the runtime's message; the state is then unchanged (as
// in C++).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "rill/extension.hpp"
#include "rill/rill.hpp"
#include "rill/convert.hpp"

namespace py = pybind11;
using namespace rill;

namespace {

// A failed call: its Status and message, raised as the Python class registered for the code.
struct StatusError {
  Status status;
  std::string message;
};
// dict: int code -> exception class (set by __init__.py). A plain reference, kept for the process: a
// py::object here would be released by a static destructor after the interpreter has finalized.
PyObject* g_exceptions = nullptr;
constexpr Status kConvertFailed = static_cast<Status>(1000);  // rill.ConvertError (not a runtime Status)

[[noreturn]] void raise(Status s, const std::string& message) { throw StatusError{s, message}; }
void check(Status s, const char* what) {
  if (s != Status::kOk) raise(s, std::string(what) + ": " + status_str(s));
}
void check(Status s, const Error& e, const char* what) {
  if (s != Status::kOk) raise(s, std::string(what) + ": " + (e.message[0] ? e.message : status_str(s)));
}

using F32 = py::array_t<float, py::array::c_style>;
using I32 = py::array_t<int32_t, py::array::c_style>;

// A float32, C-contiguous array of `ndim` dimensions, without conversion (a copy would hide that the
// caller passed the wrong thing, and `out=` must be the caller's own memory).
F32 f32_arg(const py::handle& h, const char* name, int ndim) {
  if (!py::isinstance<py::array>(h)) raise(Status::kInvalidArgument, std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(h);
  if (!a.dtype().is(py::dtype::of<float>()))
    raise(Status::kInvalidArgument, std::string(name) + " must be float32, not " + std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    raise(Status::kInvalidArgument, std::string(name) + " must have " + std::to_string(ndim) + " dimension(s), not " +
                                        std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style)) raise(Status::kInvalidArgument, std::string(name) + " must be C-contiguous");
  return py::reinterpret_borrow<F32>(a);
}

// Token ids: any integer sequence or array, as int32 (values outside int32 are refused, not wrapped).
std::vector<int32_t> tokens_arg(const py::handle& h) {
  std::vector<int32_t> out;
  if (py::isinstance<py::array>(h)) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
      raise(Status::kInvalidArgument, "tokens must be integers, not " + std::string(py::str(a.dtype())));
    if (a.ndim() != 1) raise(Status::kInvalidArgument, "tokens must be one-dimensional");
  }
  for (const py::handle& t : h) {
    if (!py::isinstance<py::int_>(t) && !py::hasattr(t, "__index__"))
      raise(Status::kInvalidArgument, "tokens must be integers");
    const long long v = py::int_(py::reinterpret_borrow<py::object>(t)).cast<long long>();
    if (v < INT32_MIN || v > INT32_MAX) raise(Status::kTokenRange, "token " + std::to_string(v) + " is out of range");
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

// A loaded model and its thread pool; sessions and batches hold it (shared_ptr), so deleting the
// Python Model while they live is safe.
struct ModelHolder {
  LoadedModel lm;
  ThreadPool* pool = nullptr;
  std::string path;
  ~ModelHolder() { ThreadPool::destroy(pool); }
  const Model& model() const { return lm.model(); }
  ModelInfo info() const { return lm.model().info(); }
};

const char* tokenizer_name(TokenizerKind k) {
  switch (k) {
    case TokenizerKind::kBytes: return "bytes";
    case TokenizerKind::kWorld: return "world";
    case TokenizerKind::kBpe: return "bpe";
    case TokenizerKind::kSentencePiece: return "sentencepiece";
    case TokenizerKind::kBpeByteFallback: return "bpe-byte-fallback";
    default: return "none";
  }
}

struct PySession {
  std::shared_ptr<ModelHolder> m;
  OwnedSession s;
  uint32_t prefill_chunk = 64;
  bool slide = false;  // a full context slides (else ContextFull)
  bool chunked = false;  // SessionOptions::chunked_prefill
  size_t n_out() const { return m->info().d_output; }
  bool vector_model() const { return m->info().d_input != 0; }
};

// The output array: the caller's (checked) or a new one of `n` floats.
F32 out_array(const py::object& out, size_t n, const char* what) {
  if (out.is_none()) return F32(static_cast<py::ssize_t>(n));
  F32 a = f32_arg(out, "out", 1);
  if (static_cast<size_t>(a.size()) != n)
    raise(Status::kInvalidArgument, std::string(what) + ": out has " + std::to_string(a.size()) + " floats, " +
                                        std::to_string(n) + " needed");
  return a;
}

PySession make_session(const std::shared_ptr<ModelHolder>& m, uint32_t prefill_chunk, bool slide, bool chunked) {
  PySession p;
  p.m = m;
  SessionOptions o;
  o.pool = m->pool;
  o.prefill_chunk = prefill_chunk;
  o.context_full = slide ? ContextFull::kSlide : ContextFull::kRefuse;
  o.chunked_prefill = chunked;
  p.prefill_chunk = prefill_chunk;
  p.slide = slide;
  p.chunked = chunked;
  Error e;
  check(OwnedSession::create(m->model(), o, &p.s, &e), e, "session");
  return p;
}

struct PyBatch {
  std::shared_ptr<ModelHolder> m;
  AlignedBuffer arena;
  Batch b;
};

struct PySampler {
  Sampler s;
  std::vector<Sampler::Candidate> scratch;
};

}  // namespace

// A batch step over Python sessions: their C++ sessions in a row, the outputs [n, d_output] in a new
// array, the GIL released; a refusal names the stream. skip: the refused streams are skipped (NaN rows)
// and the result is (outputs, {stream: status code}).
template <class Step>
py::object batch_run(PyBatch& b, const std::vector<PySession*>& sessions, bool skip, Step step) {
  std::vector<Session*> ss;
  for (PySession* p : sessions) {
    if (!p || p->m.get() != b.m.get()) raise(Status::kInvalidArgument, "batch step: a session of another model");
    ss.push_back(&p->s.session());
  }
  if (ss.empty() || ss.size() > b.b.max_streams())
    raise(Status::kInvalidArgument, "batch step: " + std::to_string(ss.size()) + " sessions, 1 to " +
                                        std::to_string(b.b.max_streams()) + " allowed");
  const size_t n = ss.size(), dout = b.m->info().d_output;
  F32 o({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dout)});
  float* dst = o.mutable_data();
  std::vector<Status> verdicts(n, Status::kOk);
  Status s;
  {
    py::gil_scoped_release nogil;
    s = step(ss.data(), n, dst, verdicts.data(), skip ? BadStream::kSkip : BadStream::kRefuseAll);
  }
  if (skip && s == Status::kOk) {
    py::dict refused;
    for (size_t i = 0; i < n; ++i)
      if (verdicts[i] != Status::kOk) refused[py::int_(i)] = py::int_(static_cast<int>(verdicts[i]));
    return py::make_tuple(o, refused);
  }
  if (s != Status::kOk) {
    for (size_t i = 0; i < n; ++i)
      if (verdicts[i] != Status::kOk)
        raise(verdicts[i], "batch step: stream " + std::to_string(i) + ": " + status_str(verdicts[i]) +
                               (verdicts[i] == Status::kInvalidArgument ? " (this session is also an earlier stream)" : ""));
    check(s, "batch step");
  }
  return o;
}

PYBIND11_MODULE(_rill, mod) {
  mod.doc() = "rill's C++ runtime and converter (use the rill package, not this module)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object cls = py::reinterpret_borrow<py::object>(PyExc_RuntimeError);
      if (g_exceptions && PyDict_Check(g_exceptions)) {
        py::dict d = py::reinterpret_borrow<py::dict>(g_exceptions);
        const py::int_ code(static_cast<int>(e.status));
        if (d.contains(code)) cls = d[code];
      }
      PyErr_SetString(cls.ptr(), e.message.c_str());
    }
  });
  mod.def("_set_exceptions", [](py::dict d) {
    Py_XDECREF(g_exceptions);
    g_exceptions = d.inc_ref().ptr();
  });
  mod.def("status_str", [](int code) { return std::string(status_str(static_cast<Status>(code))); });

  py::class_<ModelHolder, std::shared_ptr<ModelHolder>>(mod, "_Model")
      .def(py::init([](const std::string& path, const std::string& backend, int device, py::object threads,
                       uint32_t max_context) {
             auto m = std::make_shared<ModelHolder>();
             m->path = path;
             ModelOptions o;
             if (backend == "cpu") o.backend = Backend::kCpu;
             else if (backend == "cuda") o.backend = Backend::kCuda;
             else raise(Status::kInvalidArgument, "backend must be 'cpu' or 'cuda', not '" + backend + "'");
             o.device = device;
             o.max_context = max_context;
             Error e;
             Status s;
             {
               py::gil_scoped_release nogil;
               s = LoadedModel::open(path.c_str(), o, &m->lm, &e);
             }
             check(s, e, path.c_str());
             if (!threads.is_none()) {
               const long n = threads.cast<long>();
               if (n < 1 || n > 256) raise(Status::kInvalidArgument, "threads must be in [1, 256]");
               if (n > 1) check(ThreadPool::create(static_cast<size_t>(n), &m->pool), "thread pool");
             }
             return m;
           }),
           py::arg("path"), py::arg("backend") = "cpu", py::arg("device") = 0, py::arg("threads") = py::none(),
           py::arg("max_context") = 0)
      .def_property_readonly("info",
                             [](const ModelHolder& m) {
                               const ModelInfo i = m.info();
                               py::dict d;
                               d["arch"] = rill::arch_name(i.arch);
                               d["backend"] = i.backend;
                               d["d_model"] = i.d_model;
                               d["n_layer"] = i.n_layer;
                               d["vocab_size"] = i.vocab_size;
                               d["d_input"] = i.d_input;
                               d["d_output"] = i.d_output;
                               d["input"] = i.d_input ? "vectors" : "tokens";
                               d["output"] = i.d_input ? "vectors" : "logits";
                               d["weight_bytes"] = i.weight_bytes;
                               d["state_bytes"] = i.state_bytes;
                               d["file_bytes"] = i.file_bytes;
                               d["tokenizer"] = tokenizer_name(i.tokenizer);
                               d["bos_id"] = i.bos_id;
                               d["eos_id"] = i.eos_id;
                               d["max_context"] = i.max_context;
                               d["path"] = m.path;
                               return d;
                             })
      .def("session",
           [](const std::shared_ptr<ModelHolder>& m, uint32_t prefill_chunk, bool slide, bool chunked_prefill) {
             return make_session(m, prefill_chunk, slide, chunked_prefill);
           },
           py::arg("prefill_chunk") = 64, py::arg("slide") = false, py::arg("chunked_prefill") = false)
      .def("tokenize",
           [](const ModelHolder& m, const std::string& text) {
             size_t n = 0;
             std::vector<int32_t> ids(text.size() + 16);
             Status s = tokenize(m.model(), text.data(), text.size(), ids.data(), ids.size(), &n);
             if (s == Status::kInvalidArgument && n > ids.size()) {
               ids.resize(n);
               s = tokenize(m.model(), text.data(), text.size(), ids.data(), ids.size(), &n);
             }
             check(s, "tokenize");
             I32 out(static_cast<py::ssize_t>(n));
             std::memcpy(out.mutable_data(), ids.data(), n * sizeof(int32_t));
             return out;
           })
      .def("detokenize", [](const ModelHolder& m, py::object ids) {
        const std::vector<int32_t> t = tokens_arg(ids);
        std::string bytes;
        char buf[1024];
        for (int32_t id : t) {
          size_t n = 0;
          check(detokenize(m.model(), id, buf, sizeof buf, &n), "detokenize");
          bytes.append(buf, n);
        }
        return py::bytes(bytes);
      });

  py::class_<PySession>(mod, "_Session")
      .def("step",
           [](PySession& p, py::object token, py::object out) {
             if (p.vector_model()) raise(Status::kInvalidArgument, "step: a vector model (use step_vector)");
             const std::vector<int32_t> t = tokens_arg(py::make_tuple(token));
             F32 o = out_array(out, p.n_out(), "step");
             float* dst = o.mutable_data();
             Status s;
             {
               py::gil_scoped_release nogil;
               s = p.s.session().step(t[0], dst, p.n_out());
             }
             check(s, "step");
             return o;
           },
           py::arg("token"), py::arg("out") = py::none())
      .def("prefill",
           [](PySession& p, py::object tokens, py::object out) {
             if (p.vector_model()) raise(Status::kInvalidArgument, "prefill: a vector model (use stream)");
             const std::vector<int32_t> t = tokens_arg(tokens);
             F32 o = out_array(out, p.n_out(), "prefill");
             float* dst = o.mutable_data();
             Status s;
             {
               py::gil_scoped_release nogil;
               s = p.s.session().prefill(t.data(), t.size(), dst, p.n_out());
             }
             check(s, "prefill");
             return o;
           },
           py::arg("tokens"), py::arg("out") = py::none())
      .def("logits",
           [](PySession& p, py::object tokens) {
             if (p.vector_model()) raise(Status::kInvalidArgument, "logits: a vector model (use stream)");
             const std::vector<int32_t> t = tokens_arg(tokens);
             const size_t V = p.n_out();
             for (int32_t id : t)  // all checked first: a bad id changes nothing
               if (id < 0 || static_cast<uint32_t>(id) >= p.m->info().vocab_size)
                 raise(Status::kTokenRange, "logits: token " + std::to_string(id) + " is outside [0, " +
                                                std::to_string(p.m->info().vocab_size) + ")");
             F32 o({static_cast<py::ssize_t>(t.size()), static_cast<py::ssize_t>(V)});
             float* dst = o.mutable_data();
             Status s = Status::kOk;
             {
               py::gil_scoped_release nogil;
               for (size_t i = 0; i < t.size() && s == Status::kOk; ++i) s = p.s.session().step(t[i], dst + i * V, V);
             }
             check(s, "logits");
             return o;
           })
      .def("step_vector",
           [](PySession& p, py::object x, py::object out) {
             if (!p.vector_model()) raise(Status::kInvalidArgument, "step_vector: a token model (use step)");
             F32 in = f32_arg(x, "x", 1);
             F32 o = out_array(out, p.n_out(), "step_vector");
             const float* src = in.data();
             float* dst = o.mutable_data();
             const size_t n = static_cast<size_t>(in.size());
             Status s;
             {
               py::gil_scoped_release nogil;
               s = p.s.session().step_vector(src, n, dst, p.n_out());
             }
             check(s, "step_vector");
             return o;
           },
           py::arg("x"), py::arg("out") = py::none())
      .def("stream",
           [](PySession& p, py::object X) {
             if (!p.vector_model()) raise(Status::kInvalidArgument, "stream: a token model (use logits)");
             F32 in = f32_arg(X, "X", 2);
             const size_t T = static_cast<size_t>(in.shape(0)), din = static_cast<size_t>(in.shape(1)),
                          dout = p.n_out();
             if (din != p.m->info().d_input)
               raise(Status::kInvalidArgument, "stream: X has " + std::to_string(din) + " columns, the model takes " +
                                                   std::to_string(p.m->info().d_input));
             F32 o({static_cast<py::ssize_t>(T), static_cast<py::ssize_t>(dout)});
             const float* src = in.data();
             float* dst = o.mutable_data();
             Status s = Status::kOk;
             {
               py::gil_scoped_release nogil;
               if (T == 1) s = p.s.session().step_vector(src, din, dst, dout);
               else if (T > 1) s = p.s.session().prefill_vectors(src, T, T * din, dst, T * dout);
             }
             check(s, "stream");
             return o;
           })
      .def("reset", [](PySession& p) { check(p.s.session().reset(), "reset"); })
      .def_property(
          "state",
          [](PySession& p) {
            std::string blob(p.s.session().state_size(), '\0');
            check(p.s.session().state_copy_out(blob.data(), blob.size()), "state");
            return py::bytes(blob);
          },
          [](PySession& p, py::bytes b) {
            const std::string blob = b;
            check(p.s.session().state_copy_in(blob.data(), blob.size()), "state");
          })
      .def("clone",
           [](PySession& p) {
             PySession c = make_session(p.m, p.prefill_chunk, p.slide, p.chunked);
             const size_t n = p.s.session().state_size();
             std::string blob(n, '\0');
             check(p.s.session().state_copy_out(blob.data(), n), "clone");
             check(c.s.session().state_copy_in(blob.data(), n), "clone");
             return c;
           })
      ;

  py::class_<PyBatch>(mod, "_Batch")
      .def(py::init([](const std::shared_ptr<ModelHolder>& m, uint32_t max_streams) {
             auto b = std::make_unique<PyBatch>();
             b->m = m;
             BatchOptions o;
             o.pool = m->pool;
             o.max_streams = max_streams;
             size_t bytes = 0;
             check(Batch::footprint(m->model(), o, &bytes), "batch");
             check(AlignedBuffer::allocate(bytes, &b->arena), "batch");
             Error e;
             check(Batch::init(m->model(), o, b->arena.data(), bytes, &b->b, &e), e, "batch");
             return b;
           }),
           py::arg("model"), py::arg("max_streams"))
      .def("step",
           [](PyBatch& b, std::vector<PySession*> sessions, py::object tokens, bool skip) {
             const std::vector<int32_t> t = tokens_arg(tokens);
             if (sessions.size() != t.size())
               raise(Status::kInvalidArgument, "batch step: " + std::to_string(sessions.size()) + " sessions, " +
                                                   std::to_string(t.size()) + " tokens");
             return batch_run(b, sessions, skip, [&](Session* const* ss, size_t n, float* dst, Status* v, BadStream m) {
               return b.b.step(ss, t.data(), n, dst, n * b.m->info().d_output, v, m);
             });
           })
      .def("step_vectors", [](PyBatch& b, std::vector<PySession*> sessions, py::object X, bool skip) {
        F32 in = f32_arg(X, "X", 2);
        const size_t din = b.m->info().d_input;
        if (!din) raise(Status::kInvalidArgument, "batch step_vectors: a token model (use step)");
        if (static_cast<size_t>(in.shape(0)) != sessions.size() || static_cast<size_t>(in.shape(1)) != din)
          raise(Status::kInvalidArgument, "batch step_vectors: X must be [" + std::to_string(sessions.size()) + ", " +
                                              std::to_string(din) + "] (one row per session)");
        const float* src = in.data();
        return batch_run(b, sessions, skip, [&](Session* const* ss, size_t n, float* dst, Status* v, BadStream m) {
          return b.b.step_vectors(ss, src, n, n * din, dst, n * b.m->info().d_output, v, m);
        });
      });

  py::class_<PySampler>(mod, "_Sampler")
      .def(py::init([](float temperature, int32_t top_k, float top_p, uint64_t seed, size_t vocab) {
             auto p = std::make_unique<PySampler>();
             p->scratch.resize(Sampler::scratch_count(vocab));
             SamplerParams sp;
             sp.temperature = temperature;
             sp.top_k = top_k;
             sp.top_p = top_p;
             sp.seed = seed;
             check(p->s.init(sp, p->scratch.data(), p->scratch.size()), "sampler");
             return p;
           }))
      .def("sample", [](PySampler& p, py::object logits, size_t n_valid) {
        F32 l = f32_arg(logits, "logits", 1);
        const int32_t t = p.s.sample(l.data(), static_cast<size_t>(l.size()), n_valid);
        if (t < 0) raise(Status::kInvalidArgument, "sample: nothing to sample");
        return t;
      });

  mod.def(
      "convert",
      [](const std::string& checkpoint, const std::string& out, const std::string& dtype, uint32_t group,
         const std::string& quant_layout, const std::string& tokenizer, const std::string& kv_dtype, bool force,
         const std::string& report_csv) {
        convert::Options o;
        o.input_dir = checkpoint;
        o.output = out;
        o.dtype = dtype;
        o.group = group;
        o.quant_layout = quant_layout;
        o.tokenizer = tokenizer;
        o.kv_dtype = kv_dtype;
        o.force = force;
        o.report = report_csv;
        o.quiet = true;
        o.command_line = "python: rill.convert";
        convert::Report r;
        std::string error;
        {
          py::gil_scoped_release nogil;
          try {
            r = convert::run(o);
          } catch (const std::exception& e) {
            error = e.what();
          }
        }
        // The converter speaks to its command line; here the option is an argument.
        if (const size_t at = error.find("--force"); at != std::string::npos) error.replace(at, 7, "force=True");
        if (!error.empty()) raise(kConvertFailed, error);
        py::dict d;
        d["arch"] = r.arch;
        d["source_format"] = r.source_format;
        d["params"] = r.params;
        d["weight_bytes"] = r.weight_bytes;
        d["state_bytes"] = r.state_bytes;
        d["file_bytes"] = r.file_bytes;
        py::list tensors;
        for (const convert::TensorReport& t : r.tensors) {
          py::dict td;
          td["name"] = t.name;
          td["source"] = t.source;
          td["dtype"] = t.dtype;
          td["shape"] = t.shape;
          td["bytes"] = t.bytes;
          td["rel_rms"] = t.rel_rms;
          td["note"] = t.note;
          tensors.append(td);
        }
        d["tensors"] = tensors;
        return d;
      },
      py::arg("checkpoint"), py::arg("out"), py::arg("dtype") = "f32", py::arg("group") = 32,
      py::arg("quant_layout") = "rows16", py::arg("tokenizer") = "auto", py::arg("kv_dtype") = "auto",
      py::arg("force") = false, py::arg("report_csv") = "");
}
