// Reader for the safetensors container (8-byte LE header length, JSON header,
// raw little-endian tensor bytes). Validates the whole header against the file
// before any tensor is touched.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fastinv {

// Metadata key of the CRC-32 (zlib's) of the whole data section, 8 lowercase hex digits,
// written by fastinv's exporter and verified by SafeTensors::parse when present.
inline constexpr const char* kChecksumKey = "fastinv.crc32";

struct TensorRecord {
  std::string dtype;  // "F32", "F64", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafeTensors {
 public:
  // Parse a whole file image. Throws InvalidArgument on any inconsistency, including tensor
  // data that do not match the stored checksum.
  static SafeTensors parse(std::vector<uint8_t> bytes);
  static SafeTensors read_file(const std::string& path);  // IoError if unreadable

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorRecord>& tensors() const { return tensors_; }

  // A float32 tensor by name with its shape checked against `expected` (pass an
  // empty vector to skip the check); all values must be finite. `role` names the
  // tensor's use in error messages.
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& expected, const std::string& role) const;

 private:
  std::vector<uint8_t> bytes_;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorRecord> tensors_;
};

}  // namespace fastinv
