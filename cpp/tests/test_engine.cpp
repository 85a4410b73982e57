// C++ tests of the engine through the public API only, with no Python: model files
// are written here, results compared with a naive double-precision implementation of
// the same network, and the loader is fed corrupted files. Run under ASan + UBSan in
// CI (tests/test_cpp_native.py runs them through ctest). GoogleTest.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "fastinv/fastinv.hpp"

namespace {

using namespace fastinv_test;

// --- a tiny safetensors writer -------------------------------------------------
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

std::vector<uint8_t> write_model(const std::map<std::string, Tensor>& tensors, const std::string& graph) {
  std::string header = "{";
  std::vector<uint8_t> blob;
  for (const auto& [name, t] : tensors) {
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
    const size_t begin = blob.size();
    blob.resize(begin + t.data.size() * 4);
    std::memcpy(blob.data() + begin, t.data.data(), t.data.size() * 4);
    header += "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(begin) + "," + std::to_string(blob.size()) + "]},";
  }
  std::string escaped;
  for (char c : graph) escaped += (c == '"' ? std::string("\\\"") : std::string(1, c));
  header += "\"__metadata__\":{\"fastinv.graph\":\"" + escaped + "\"}}";
  while ((8 + header.size()) % 8) header += ' ';
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), blob.begin(), blob.end());
  return out;
}

Tensor random_tensor(std::mt19937& rng, std::vector<int64_t> shape, float scale) {
  Tensor t{shape, {}};
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < n; ++i) t.data.push_back(u(rng));
  return t;
}

// --- the test network and its naive reference -----------------------------------
// x (4, 30) -> conv1d 4->7 k3 pad (1,1) -> relu -> maxpool k2 s2 -> conv1d 7->5 k3 s2 d1
// pad (0,1) -> elu(1) -> flatten -> linear 5*L -> 6 -> sigmoid ; residual branch: none.
const char* kGraph =
    "{\"format\":\"fastinv.graph\",\"version\":1,"
    "\"input\":{\"name\":\"x\",\"shape\":[4,30],\"layout\":\"ncl\"},"
    "\"nodes\":["
    "{\"name\":\"c1\",\"op\":\"conv1d\",\"inputs\":[\"x\"],\"weight\":\"c1.w\",\"bias\":\"c1.b\",\"stride\":1,"
    "\"padding\":[1,1],\"dilation\":1},"
    "{\"name\":\"a1\",\"op\":\"act\",\"inputs\":[\"c1\"],\"kind\":\"relu\"},"
    "{\"name\":\"p1\",\"op\":\"maxpool1d\",\"inputs\":[\"a1\"],\"kernel\":2,\"stride\":2,\"padding\":0},"
    "{\"name\":\"c2\",\"op\":\"conv1d\",\"inputs\":[\"p1\"],\"weight\":\"c2.w\",\"bias\":\"c2.b\",\"stride\":2,"
    "\"padding\":[0,1],\"dilation\":1},"
    "{\"name\":\"a2\",\"op\":\"act\",\"inputs\":[\"c2\"],\"kind\":\"elu\",\"alpha\":1.0},"
    "{\"name\":\"f\",\"op\":\"flatten\",\"inputs\":[\"a2\"]},"
    "{\"name\":\"fc\",\"op\":\"linear\",\"inputs\":[\"f\"],\"weight\":\"fc.w\",\"bias\":\"fc.b\"},"
    "{\"name\":\"out\",\"op\":\"act\",\"inputs\":[\"fc\"],\"kind\":\"sigmoid\"}],"
    "\"output\":\"out\"}";

using Mat = std::vector<std::vector<double>>;  // [c][l]

Mat conv(const Mat& x, const Tensor& w, const Tensor& b, int stride, int pl, int pr) {
  const int64_t co = w.shape[0], ci = w.shape[1], k = w.shape[2], lin = int64_t(x[0].size());
  const int64_t lout = (lin + pl + pr - k) / stride + 1;
  Mat y(size_t(co), std::vector<double>(size_t(lout), 0.0));
  for (int64_t o = 0; o < co; ++o)
    for (int64_t l = 0; l < lout; ++l) {
      double acc = b.data[size_t(o)];
      for (int64_t i = 0; i < ci; ++i)
        for (int64_t t = 0; t < k; ++t) {
          const int64_t p = l * stride - pl + t;
          if (p >= 0 && p < lin) acc += double(w.data[size_t((o * ci + i) * k + t)]) * x[size_t(i)][size_t(p)];
        }
      y[size_t(o)][size_t(l)] = acc;
    }
  return y;
}

std::vector<double> reference(const std::map<std::string, Tensor>& t, const float* x) {
  Mat in(4, std::vector<double>(30));
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 30; ++l) in[size_t(c)][size_t(l)] = x[c * 30 + l];
  Mat h = conv(in, t.at("c1.w"), t.at("c1.b"), 1, 1, 1);
  for (auto& row : h)
    for (double& v : row) v = std::max(v, 0.0);
  Mat p(h.size(), std::vector<double>(h[0].size() / 2));
  for (size_t c = 0; c < h.size(); ++c)
    for (size_t l = 0; l < p[0].size(); ++l) p[c][l] = std::max(h[c][2 * l], h[c][2 * l + 1]);
  Mat g = conv(p, t.at("c2.w"), t.at("c2.b"), 2, 0, 1);
  std::vector<double> flat;
  for (auto& row : g)
    for (double v : row) flat.push_back(v > 0 ? v : std::expm1(v));
  const Tensor& w = t.at("fc.w");
  std::vector<double> out;
  for (int64_t o = 0; o < w.shape[0]; ++o) {
    double acc = t.at("fc.b").data[size_t(o)];
    for (int64_t i = 0; i < w.shape[1]; ++i) acc += double(w.data[size_t(o * w.shape[1] + i)]) * flat[size_t(i)];
    out.push_back(1.0 / (1.0 + std::exp(-acc)));
  }
  return out;
}

std::map<std::string, Tensor> make_weights(std::mt19937& rng) {
  // conv2 output length: maxpool gives 15, (15 + 1 - 3) / 2 + 1 = 7
  return {{"c1.w", random_tensor(rng, {7, 4, 3}, 0.5f)}, {"c1.b", random_tensor(rng, {7}, 0.1f)},
          {"c2.w", random_tensor(rng, {5, 7, 3}, 0.5f)}, {"c2.b", random_tensor(rng, {5}, 0.1f)},
          {"fc.w", random_tensor(rng, {6, 35}, 0.3f)},   {"fc.b", random_tensor(rng, {6}, 0.1f)}};
}

TEST(Engine, MatchesDoubleReferenceOnEveryIsa) {
  std::mt19937 rng(12345);
  auto weights = make_weights(rng);
  const std::vector<uint8_t> file = write_model(weights, kGraph);
  const std::string path = "fastinv_test_model.safetensors";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()), std::streamsize(file.size()));
  fastinv::Model model = fastinv::Model::load(path);
  std::remove(path.c_str());
  EXPECT_TRUE(model.input_size() == 120 && model.output_size() == 6) << "shapes from the file";
  EXPECT_TRUE(model.info().parameters == 7 * 12 + 7 + 5 * 21 + 5 + 6 * 35 + 6) << "parameter count";

  const int64_t n = 37;  // not a multiple of the tile width
  Tensor x = random_tensor(rng, {n, 4, 30}, 2.f);
  x.data[5 * 120 + 17] = NAN;  // sample 5 only
  for (fastinv::Isa isa : fastinv::available_isas()) {
    fastinv::set_active_isa(isa);
    std::vector<float> y(size_t(n * 6)), y1(size_t(n * 6));
    model.run(x.data.data(), y.data(), n, 2);
    model.run(x.data.data(), y1.data(), n, 1);
    double err = 0;
    bool nan_ok = true;
    for (int64_t s = 0; s < n; ++s) {
      const std::vector<double> ref = reference(weights, x.data.data() + s * 120);
      for (int o = 0; o < 6; ++o) {
        const float v = y[size_t(s * 6 + o)];
        if (s == 5)
          nan_ok = nan_ok && std::isnan(v);
        else
          err = std::max(err, std::abs(v - ref[size_t(o)]));
      }
    }
    const std::string name = fastinv::isa_name(isa);
    EXPECT_TRUE(err < 1e-5) << name + ": matches the double reference (max err " + std::to_string(err) + ")";
    EXPECT_TRUE(nan_ok) << name + ": NaN input reaches only its own sample";
    EXPECT_TRUE(std::memcmp(y.data(), y1.data(), y.size() * 4) == 0) << name + ": 1 and 2 threads bitwise identical";
  }
  fastinv::set_active_isa(fastinv::available_isas().back());
}

TEST(Engine, RejectsCorruptedFiles) {
  std::mt19937 rng(54321);
  const std::vector<uint8_t> good = write_model(make_weights(rng), kGraph);
  EXPECT_TRUE(throws_with<fastinv::IoError>([] { fastinv::Model::load("/nonexistent/model.safetensors"); }, ""))
      << "missing file";
  // Every truncation is rejected with a clear error.
  bool all_rejected = true;
  for (size_t len = 0; len < good.size(); len += (len < 400 ? 1 : 97)) {
    try {
      fastinv::Model::from_memory(good.data(), len);
      all_rejected = false;
    } catch (const fastinv::InvalidArgument&) {
    }
  }
  EXPECT_TRUE(all_rejected) << "every truncated file is rejected";
  // Random byte corruption anywhere: loads or throws fastinv::Error, never crashes.
  bool survived = true;
  std::uniform_int_distribution<size_t> pos(0, good.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bad = good;
    for (int f = 0; f < 1 + trial % 4; ++f) bad[pos(rng)] = uint8_t(byte(rng));
    try {
      fastinv::Model m = fastinv::Model::from_memory(bad.data(), bad.size());
      std::vector<float> x(size_t(m.input_size() * 3), 0.5f), y(size_t(m.output_size() * 3));
      m.run(x.data(), y.data(), 3);
    } catch (const fastinv::Error&) {
    } catch (...) {
      survived = false;
    }
  }
  EXPECT_TRUE(survived) << "random corruption never escapes as a non-fastinv exception";

  auto rejects = [&](const std::string& graph, const std::string& what, const std::string& needle,
                     std::map<std::string, Tensor> w = {}) {
    if (w.empty()) w = make_weights(rng);
    const std::vector<uint8_t> f = write_model(w, graph);
    EXPECT_TRUE(throws_with<fastinv::InvalidArgument>([&] { fastinv::Model::from_memory(f.data(), f.size()); }, needle))
        << what;
  };
  std::string g = kGraph;
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = g;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  rejects(replaced("\"op\":\"maxpool1d\"", "\"op\":\"lstm\""), "unknown op", "unknown op \"lstm\"");
  rejects(replaced("\"kind\":\"elu\"", "\"kind\":\"swish2\""), "unknown activation", "swish2");
  rejects(replaced("\"stride\":2", "\"stride\":2,\"groups\":2"), "unknown attribute", "\"groups\"");
  rejects(replaced("\"inputs\":[\"p1\"]", "\"inputs\":[\"a2\"]"), "reference to a later node", "earlier node");
  rejects(replaced("\"version\":1", "\"version\":2"), "future format version", "version");
  rejects(g.substr(0, g.size() - 3), "bad JSON", "invalid JSON");
  auto w = make_weights(rng);
  w["c2.w"].data[3] = INFINITY;
  rejects(g, "non-finite weight", "non-finite", w);
  w = make_weights(rng);
  w["fc.w"] = random_tensor(rng, {6, 34}, 0.3f);
  rejects(g, "weight shape mismatch", "receives 35", w);
  // Overlapping tensor data ranges.
  const std::string overlap_header =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  std::vector<uint8_t> overlapped(8, 0);
  overlapped[0] = uint8_t(overlap_header.size());
  overlapped.insert(overlapped.end(), overlap_header.begin(), overlap_header.end());
  overlapped.resize(overlapped.size() + 12, 0);
  EXPECT_TRUE(throws_with<fastinv::InvalidArgument>(
      [&] { fastinv::Model::from_memory(overlapped.data(), overlapped.size()); }, "overlap"))
      << "overlapping data ranges";
  // Offsets past the end of the file.
  std::vector<uint8_t> past = overlapped;
  past.resize(past.size() - 4);
  EXPECT_TRUE(
      throws_with<fastinv::InvalidArgument>([&] { fastinv::Model::from_memory(past.data(), past.size()); }, "outside"))
      << "offsets outside the file";

  fastinv::Model m = fastinv::Model::from_memory(good.data(), good.size());
  EXPECT_TRUE(throws_with<fastinv::InvalidArgument>(
      [&] {
        fastinv::InputView in{nullptr, fastinv::DType::f32, fastinv::Strided::contiguous(2, {4, 29})};
        std::vector<float> y(12);
        m.run(in, fastinv::OutputView{y.data(), fastinv::Strided::contiguous(2, {6})});
      },
      "per-sample shape"))
      << "wrong input shape";
}

}  // namespace
