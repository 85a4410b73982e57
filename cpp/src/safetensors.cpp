#include "safetensors.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fastinv/error.hpp"
#include "json.hpp"

namespace fastinv {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the safetensors limit

int64_t item_size(const std::string& dtype) {
  static const std::map<std::string, int64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? -1 : it->second;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; zlib's crc32), table-driven.
uint32_t crc32(const uint8_t* data, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// The tensor data against the checksum fastinv's exporter stores in the metadata (files
// without one, written before it existed, are accepted; the Python layer warns).
void verify_checksum(const std::map<std::string, std::string>& metadata, const uint8_t* data, size_t n) {
  auto it = metadata.find(kChecksumKey);
  if (it == metadata.end()) return;
  const std::string& want = it->second;
  if (want.size() != 8 || want.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw InvalidArgument(std::string("model file: ") + kChecksumKey + " must be 8 lowercase hex digits, got \"" +
                          want.substr(0, 20) + "\"");
  char got[9];
  std::snprintf(got, sizeof got, "%08x", crc32(data, n));
  if (want != got)
    throw InvalidArgument(std::string("model file is damaged: its tensor data have CRC-32 ") + got + " but " +
                          kChecksumKey + " says " + want + " (a changed byte; export or download it again)");
}

uint64_t as_uint(const json::Value& v, const std::string& what) {
  if (!v.is_number() || v.number < 0 || v.number != std::floor(v.number) || v.number > 9.0e15)
    throw InvalidArgument("model file: " + what + " must be a non-negative integer");
  return static_cast<uint64_t>(v.number);
}

}  // namespace

SafeTensors SafeTensors::parse(std::vector<uint8_t> bytes) {
  SafeTensors st;
  if (bytes.size() < 8) throw InvalidArgument("model file is truncated: shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[size_t(i)];
  if (n > kMaxHeader) throw InvalidArgument("model file header length " + std::to_string(n) + " exceeds 100 MB");
  if (n > bytes.size() - 8)
    throw InvalidArgument("model file is truncated: header says " + std::to_string(n) +
                          " header bytes but the file has " + std::to_string(bytes.size() - 8));
  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, size_t(n));
  json::Value header = json::parse(text, "model file header");
  if (!header.is_object()) throw InvalidArgument("model file header must be a JSON object");

  st.data_start_ = 8 + size_t(n);
  const uint64_t data_size = bytes.size() - st.data_start_;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.object) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw InvalidArgument("model file: __metadata__ must be an object");
      for (const auto& [k, v] : entry.object) {
        if (!v.is_string()) throw InvalidArgument("model file: __metadata__[\"" + k + "\"] must be a string");
        st.metadata_[k] = v.string;
      }
      continue;
    }
    const std::string what = "tensor \"" + name + "\"";
    if (!entry.is_object()) throw InvalidArgument("model file: " + what + " must be an object");
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (!dtype || !dtype->is_string() || !shape || !shape->is_array() || !offsets || !offsets->is_array() ||
        offsets->array.size() != 2)
      throw InvalidArgument("model file: " + what +
                            " needs dtype (string), shape (array) and data_offsets ([begin, end])");
    TensorRecord rec;
    rec.dtype = dtype->string;
    const int64_t isz = item_size(rec.dtype);
    if (isz < 0) throw InvalidArgument("model file: " + what + " has unknown dtype \"" + rec.dtype + "\"");
    uint64_t count = 1;
    for (const json::Value& d : shape->array) {
      uint64_t dim = as_uint(d, what + " shape entry");
      rec.shape.push_back(int64_t(dim));
      if (dim != 0 && count > (uint64_t(1) << 40) / dim)
        throw InvalidArgument("model file: " + what + " shape " + shape_str(rec.shape) + " is too large");
      count *= dim;
    }
    rec.begin = as_uint(offsets->array[0], what + " data_offsets");
    rec.end = as_uint(offsets->array[1], what + " data_offsets");
    if (rec.begin > rec.end || rec.end > data_size)
      throw InvalidArgument("model file: " + what + " data_offsets [" + std::to_string(rec.begin) + ", " +
                            std::to_string(rec.end) + "] lie outside the " + std::to_string(data_size) +
                            "-byte data section (truncated file?)");
    if (rec.end - rec.begin != count * uint64_t(isz))
      throw InvalidArgument("model file: " + what + " has " + std::to_string(rec.end - rec.begin) +
                            " bytes but dtype " + rec.dtype + " and shape " + shape_str(rec.shape) + " need " +
                            std::to_string(count * uint64_t(isz)));
    if (rec.end > rec.begin) ranges.emplace_back(rec.begin, rec.end);
    st.tensors_.emplace(name, std::move(rec));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw InvalidArgument("model file: tensor data ranges overlap at byte " + std::to_string(ranges[i].first));
  verify_checksum(st.metadata_, bytes.data() + st.data_start_, size_t(data_size));
  st.bytes_ = std::move(bytes);
  return st;
}

SafeTensors SafeTensors::read_file(const std::string& path) {
  // A directory "opens" as a stream on Linux and reports a garbage size.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw IoError("cannot open model file '" + path +
                  "': " + (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw IoError("cannot open model file '" + path + "': " + std::strerror(errno));
  const std::streamoff size = f.tellg();
  if (size < 0) throw IoError("cannot read model file '" + path + "'");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw IoError("cannot read model file '" + path + "'");
  try {
    return parse(std::move(bytes));
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(e.what()) + " ('" + path + "')");
  }
}

std::vector<float> SafeTensors::f32(const std::string& name, const std::vector<int64_t>& expected,
                                    const std::string& role) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw InvalidArgument("model file: " + role + " tensor \"" + name + "\" is missing");
  const TensorRecord& rec = it->second;
  if (rec.dtype != "F32")
    throw InvalidArgument("model file: " + role + " tensor \"" + name + "\" has dtype " + rec.dtype + ", expected F32");
  if (!expected.empty() && rec.shape != expected)
    throw InvalidArgument("model file: " + role + " tensor \"" + name + "\" has shape " + shape_str(rec.shape) +
                          ", expected " + shape_str(expected));
  std::vector<float> out((rec.end - rec.begin) / 4);
  // The format is little-endian; so is every platform fastinv builds for.
  if (!out.empty()) std::memcpy(out.data(), bytes_.data() + data_start_ + rec.begin, out.size() * 4);
  for (size_t i = 0; i < out.size(); ++i)
    if (!std::isfinite(out[i]))
      throw InvalidArgument("model file: " + role + " tensor \"" + name + "\" has a non-finite value at index " +
                            std::to_string(i));
  return out;
}

}  // namespace fastinv
