#include "graph.hpp"

#include <cmath>
#include <map>
#include <set>

#include "fastinv/error.hpp"
#include "json.hpp"

namespace fastinv {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;        // channels or length of one value
constexpr int64_t kMaxValueSize = int64_t(1) << 26;  // floats per sample in one value

[[noreturn]] void fail(const std::string& node, const std::string& msg) {
  throw InvalidArgument("model graph: node \"" + node + "\": " + msg);
}

class NodeReader {
 public:
  NodeReader(const json::Value& v, std::string name) : v_(v), name_(std::move(name)) {}

  const std::string& name() const { return name_; }

  int64_t integer(const char* key, int64_t def, int64_t lo, int64_t hi) {
    used_.insert(key);
    const json::Value* x = v_.find(key);
    if (!x) return def;
    if (!x->is_number() || x->number != std::floor(x->number) || x->number < double(lo) || x->number > double(hi))
      fail(name_, std::string("attribute \"") + key + "\" must be an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
    return int64_t(x->number);
  }

  int64_t required_integer(const char* key, int64_t lo, int64_t hi) {
    if (!v_.find(key)) fail(name_, std::string("missing attribute \"") + key + "\"");
    return integer(key, 0, lo, hi);
  }

  float real(const char* key, float def) {
    used_.insert(key);
    const json::Value* x = v_.find(key);
    if (!x) return def;
    if (!x->is_number() || !std::isfinite(float(x->number)))
      fail(name_, std::string("attribute \"") + key + "\" must be a finite number");
    return float(x->number);
  }

  bool boolean(const char* key, bool def) {
    used_.insert(key);
    const json::Value* x = v_.find(key);
    if (!x) return def;
    if (!x->is_bool()) fail(name_, std::string("attribute \"") + key + "\" must be true or false");
    return x->boolean;
  }

  const std::string* string(const char* key, bool required) {
    used_.insert(key);
    const json::Value* x = v_.find(key);
    if (!x || x->type == json::Value::Type::null) {
      if (required) fail(name_, std::string("missing attribute \"") + key + "\"");
      return nullptr;
    }
    if (!x->is_string()) fail(name_, std::string("attribute \"") + key + "\" must be a string");
    return &x->string;
  }

  const json::Value* raw(const char* key) {
    used_.insert(key);
    return v_.find(key);
  }

  // Unknown attributes are errors: a writer that means something we ignore would
  // otherwise get silently wrong results.
  void check_all_used() const {
    for (const auto& [k, x] : v_.object)
      if (!used_.count(k)) fail(name_, "unknown attribute \"" + k + "\"");
  }

 private:
  const json::Value& v_;
  std::string name_;
  std::set<std::string> used_{"name", "op", "inputs"};
};

ActKind parse_act_kind(const std::string& kind, const std::string& node, bool gelu_tanh) {
  static const std::map<std::string, ActKind> kinds = {
      {"relu", ActKind::relu},       {"leaky_relu", ActKind::leaky_relu},
      {"elu", ActKind::elu},         {"silu", ActKind::silu},
      {"gelu", ActKind::gelu},       {"tanh", ActKind::tanh},
      {"sigmoid", ActKind::sigmoid}, {"softplus", ActKind::softplus}};
  auto it = kinds.find(kind);
  if (it == kinds.end())
    fail(node,
         "unknown activation \"" + kind + "\" (supported: relu, leaky_relu, elu, silu, gelu, tanh, sigmoid, softplus)");
  if (it->second == ActKind::gelu && gelu_tanh) return ActKind::gelu_tanh;
  return it->second;
}

void parse_conv(NodeReader& r, Node& n, const Shape& in, const SafeTensors& file, bool linear) {
  if (linear && in.rank != 1) fail(n.name, "linear needs a rank-1 (flattened) input");
  if (!linear && in.rank != 2) fail(n.name, "conv1d needs a rank-2 (channels, length) input");
  const std::string& wname = *r.string("weight", true);
  auto it = file.tensors().find(wname);
  if (it == file.tensors().end()) fail(n.name, "weight tensor \"" + wname + "\" is missing");
  const std::vector<int64_t>& ws = it->second.shape;
  if (ws.size() != (linear ? 2u : 3u))
    fail(n.name, std::string("weight must have ") + (linear ? "2" : "3") + " dimensions");
  n.linear = linear;
  n.cout = ws[0];
  n.cin = ws[1];
  n.kernel = linear ? 1 : ws[2];
  if (n.cout < 1 || n.cout > kMaxDim || n.kernel < 1 || n.kernel > 4096) fail(n.name, "weight shape out of range");
  if (n.cin != in.c)
    fail(n.name, "weight expects " + std::to_string(n.cin) + " input channels but receives " + std::to_string(in.c));
  n.weight = file.f32(wname, {}, "node \"" + n.name + "\" weight");
  n.tensors.emplace_back(wname, int64_t(n.weight.size()));
  if (const std::string* bname = r.string("bias", false)) {
    n.bias = file.f32(*bname, {n.cout}, "node \"" + n.name + "\" bias");
    n.tensors.emplace_back(*bname, n.cout);
  } else
    n.bias.assign(size_t(n.cout), 0.f);
  if (linear) {
    n.shape = {1, n.cout, 1};
    return;
  }
  n.stride = r.integer("stride", 1, 1, 4096);
  n.dilation = r.integer("dilation", 1, 1, 4096);
  const json::Value* pad = r.raw("padding");
  if (pad) {
    if (!pad->is_array() || pad->array.size() != 2) fail(n.name, "attribute \"padding\" must be [left, right]");
    for (int s = 0; s < 2; ++s) {
      const json::Value& p = pad->array[size_t(s)];
      if (!p.is_number() || p.number != std::floor(p.number) || p.number < 0 || p.number > 65536)
        fail(n.name, "padding entries must be integers in [0, 65536]");
    }
    n.pad_left = int64_t(pad->array[0].number);
    n.pad_right = int64_t(pad->array[1].number);
  }
  const int64_t span = n.dilation * (n.kernel - 1) + 1;
  const int64_t padded = in.l + n.pad_left + n.pad_right;
  if (padded < span)
    fail(n.name,
         "kernel (span " + std::to_string(span) + ") is longer than the padded input (" + std::to_string(padded) + ")");
  n.shape = {2, n.cout, (padded - span) / n.stride + 1};
}

void parse_pool(NodeReader& r, Node& n, const Shape& in) {
  if (in.rank != 2) fail(n.name, "pooling needs a rank-2 (channels, length) input");
  n.kernel = r.required_integer("kernel", 1, 65536);
  n.stride = r.integer("stride", n.kernel, 1, 65536);
  n.pad_left = n.pad_right = r.integer("padding", 0, 0, 65536);
  if (2 * n.pad_left > n.kernel) fail(n.name, "padding must be at most half the kernel size (as in torch)");
  if (n.op == OpKind::avgpool) n.count_include_pad = r.boolean("count_include_pad", true);
  const int64_t padded = in.l + 2 * n.pad_left;
  if (padded < n.kernel) fail(n.name, "pooling kernel is longer than the padded input");
  n.shape = {2, in.c, (padded - n.kernel) / n.stride + 1};
}

}  // namespace

const char* act_name(ActKind kind) {
  switch (kind) {
    case ActKind::identity:
      return "identity";
    case ActKind::relu:
      return "relu";
    case ActKind::leaky_relu:
      return "leaky_relu";
    case ActKind::elu:
      return "elu";
    case ActKind::silu:
      return "silu";
    case ActKind::gelu:
      return "gelu";
    case ActKind::gelu_tanh:
      return "gelu_tanh";
    case ActKind::tanh:
      return "tanh";
    case ActKind::sigmoid:
      return "sigmoid";
    case ActKind::softplus:
      return "softplus";
  }
  return "?";
}

Graph parse_graph(const SafeTensors& file) {
  auto meta = file.metadata().find("fastinv.graph");
  if (meta == file.metadata().end())
    throw InvalidArgument("model file has no \"fastinv.graph\" metadata: not written by fastinv.export?");
  json::Value doc = json::parse(meta->second, "model graph");
  if (!doc.is_object()) throw InvalidArgument("model graph must be a JSON object");
  const json::Value* format = doc.find("format");
  const json::Value* version = doc.find("version");
  if (!format || !format->is_string() || format->string != "fastinv.graph")
    throw InvalidArgument("model graph: \"format\" must be \"fastinv.graph\"");
  if (!version || !version->is_number() || version->number != 1.0)
    throw InvalidArgument("model graph: unsupported format version (this fastinv reads version 1)");

  Graph g;
  const json::Value* input = doc.find("input");
  if (!input || !input->is_object()) throw InvalidArgument("model graph: missing \"input\" object");
  const json::Value* iname = input->find("name");
  const json::Value* ishape = input->find("shape");
  const json::Value* ilayout = input->find("layout");
  if (!iname || !iname->is_string() || !ishape || !ishape->is_array() || !ilayout || !ilayout->is_string())
    throw InvalidArgument("model graph: \"input\" needs name, shape and layout");
  g.input_name = iname->string;
  g.layout = ilayout->string;
  const size_t want_rank = g.layout == "ncl" ? 2 : 1;
  if (g.layout != "nchw" && g.layout != "nc" && g.layout != "ncl")
    throw InvalidArgument("model graph: input layout \"" + g.layout + "\" is not nchw, nc or ncl");
  if (ishape->array.size() != want_rank)
    throw InvalidArgument("model graph: layout " + g.layout + " needs an input shape of rank " +
                          std::to_string(want_rank));
  for (const json::Value& d : ishape->array)
    if (!d.is_number() || d.number != std::floor(d.number) || d.number < 1 || d.number > double(kMaxDim))
      throw InvalidArgument("model graph: input shape entries must be integers in [1, 2^24]");
  g.input = {int(want_rank), int64_t(ishape->array[0].number), want_rank == 2 ? int64_t(ishape->array[1].number) : 1};
  if (g.input.size() > kMaxValueSize) throw InvalidArgument("model graph: input too large");

  const json::Value* nodes = doc.find("nodes");
  if (!nodes || !nodes->is_array() || nodes->array.empty())
    throw InvalidArgument("model graph: \"nodes\" must be a non-empty array");
  if (nodes->array.size() > 100000) throw InvalidArgument("model graph: too many nodes");
  std::map<std::string, int> ids{{g.input_name, -1}};
  for (const json::Value& jn : nodes->array) {
    if (!jn.is_object()) throw InvalidArgument("model graph: every node must be an object");
    const json::Value* name = jn.find("name");
    const json::Value* op = jn.find("op");
    const json::Value* inputs = jn.find("inputs");
    if (!name || !name->is_string() || name->string.empty())
      throw InvalidArgument("model graph: node " + std::to_string(g.nodes.size()) + " has no name");
    Node n;
    n.name = name->string;
    if (ids.count(n.name)) fail(n.name, "duplicate name");
    if (!op || !op->is_string()) fail(n.name, "missing \"op\"");
    if (!inputs || !inputs->is_array() || inputs->array.empty()) fail(n.name, "\"inputs\" must be a non-empty array");
    for (const json::Value& in : inputs->array) {
      if (!in.is_string()) fail(n.name, "inputs must be names");
      auto it = ids.find(in.string);
      if (it == ids.end()) fail(n.name, "input \"" + in.string + "\" is not the graph input or an earlier node");
      n.inputs.push_back(it->second);
    }
    const std::string& o = op->string;
    const bool multi = o == "concat" || o == "add";
    if (multi ? n.inputs.size() < 2 : n.inputs.size() != 1)
      fail(n.name, "op \"" + o + "\" takes " + (multi ? "two or more inputs" : "exactly one input"));
    const Shape& in0 = g.shape_of(n.inputs[0]);
    NodeReader r(jn, n.name);
    if (o == "conv1d" || o == "linear") {
      n.op = OpKind::conv;
      parse_conv(r, n, in0, file, o == "linear");
    } else if (o == "act") {
      n.op = OpKind::act;
      const std::string kind = *r.string("kind", true);
      const std::string* approx = r.string("approximate", false);
      if (approx && *approx != "none" && *approx != "tanh") fail(n.name, "gelu approximate must be none or tanh");
      n.act.kind = parse_act_kind(kind, n.name, approx && *approx == "tanh");
      n.act.alpha = r.real("alpha", n.act.kind == ActKind::elu ? 1.f : 0.01f);
      n.act.beta = r.real("beta", 1.f);
      n.act.threshold = r.real("threshold", 20.f);
      if (n.act.kind == ActKind::softplus && n.act.beta == 0.f) fail(n.name, "softplus beta must not be 0");
      n.shape = in0;
    } else if (o == "maxpool1d" || o == "avgpool1d") {
      n.op = o == "maxpool1d" ? OpKind::maxpool : OpKind::avgpool;
      parse_pool(r, n, in0);
    } else if (o == "flatten") {
      n.op = OpKind::flatten;
      if (in0.rank != 2) fail(n.name, "flatten needs a rank-2 input");
      n.shape = {1, in0.size(), 1};
    } else if (o == "concat" || o == "add") {
      n.op = o == "concat" ? OpKind::concat : OpKind::add;
      n.shape = in0;
      for (size_t i = 1; i < n.inputs.size(); ++i) {
        const Shape& s = g.shape_of(n.inputs[i]);
        if (s.rank != in0.rank || s.l != in0.l || (n.op == OpKind::add && s.c != in0.c))
          fail(n.name, "input shapes do not match for " + o);
        if (n.op == OpKind::concat) n.shape.c += s.c;
      }
    } else if (o == "affine") {
      n.op = OpKind::affine;
      const std::string& scale = *r.string("scale", true);
      const std::string& shift = *r.string("shift", true);
      n.scale = file.f32(scale, {in0.c}, "node \"" + n.name + "\" scale");
      n.shift = file.f32(shift, {in0.c}, "node \"" + n.name + "\" shift");
      n.tensors = {{scale, in0.c}, {shift, in0.c}};
      n.shape = in0;
    } else {
      fail(n.name, "unknown op \"" + o + "\"");
    }
    r.check_all_used();
    if (n.shape.c < 1 || n.shape.l < 1 || n.shape.c > kMaxDim || n.shape.l > kMaxDim || n.shape.size() > kMaxValueSize)
      fail(n.name, "output shape out of range");
    ids[n.name] = int(g.nodes.size());
    g.nodes.push_back(std::move(n));
  }
  const json::Value* output = doc.find("output");
  if (!output || !output->is_string()) throw InvalidArgument("model graph: missing \"output\" name");
  auto it = ids.find(output->string);
  if (it == ids.end() || it->second < 0)
    throw InvalidArgument("model graph: output \"" + output->string + "\" is not a node");
  g.output = it->second;
  if (g.layout == "nchw" && g.nodes[size_t(g.output)].shape.rank != 1)
    throw InvalidArgument("model graph: an nchw (per-pixel) network must produce a rank-1 output per pixel");
  return g;
}

std::vector<float> tap_major_weights(const Node& conv) {
  std::vector<float> w(conv.weight.size());
  for (int64_t co = 0; co < conv.cout; ++co)
    for (int64_t ci = 0; ci < conv.cin; ++ci)
      for (int64_t t = 0; t < conv.kernel; ++t)
        w[size_t((co * conv.kernel + t) * conv.cin + ci)] = conv.weight[size_t((co * conv.cin + ci) * conv.kernel + t)];
  return w;
}

std::vector<int32_t> conv_input_rows(const Node& conv, const Shape& in) {
  const int64_t k = conv.kernel * conv.cin;
  std::vector<int32_t> rows(size_t(conv.shape.l * k));
  for (int64_t lo = 0; lo < conv.shape.l; ++lo)
    for (int64_t t = 0; t < conv.kernel; ++t) {
      const int64_t pos = lo * conv.stride - conv.pad_left + t * conv.dilation;
      for (int64_t ci = 0; ci < conv.cin; ++ci)
        rows[size_t(lo * k + t * conv.cin + ci)] = pos >= 0 && pos < in.l ? int32_t(pos * conv.cin + ci) : -1;
    }
  return rows;
}

float apply_activation(const Activation& act, float x) {
  switch (act.kind) {
    case ActKind::identity:
      return x;
    case ActKind::relu:
      return x < 0.f ? 0.f : x;
    case ActKind::leaky_relu:
      return x < 0.f ? act.alpha * x : x;
    case ActKind::elu:
      return x > 0.f ? x : act.alpha * std::expm1(x);
    case ActKind::silu:
      return x / (1.f + std::exp(-x));
    case ActKind::gelu:
      return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
    case ActKind::gelu_tanh: {
      const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + std::tanh(inner));
    }
    case ActKind::tanh:
      return std::tanh(x);
    case ActKind::sigmoid:
      return 1.f / (1.f + std::exp(-x));
    case ActKind::softplus: {
      const float bx = act.beta * x;
      return bx > act.threshold ? x : std::log1p(std::exp(bx)) / act.beta;
    }
  }
  return x;
}

}  // namespace fastinv
