// A small, strict JSON parser for model-file headers (RFC 8259). Strict because
// the input is untrusted: bounded nesting depth, duplicate keys rejected, every
// error reported with its byte offset.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastinv::json {

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // file order kept

  const Value* find(std::string_view key) const;
  bool is_object() const { return type == Type::object; }
  bool is_array() const { return type == Type::array; }
  bool is_string() const { return type == Type::string; }
  bool is_number() const { return type == Type::number; }
  bool is_bool() const { return type == Type::boolean; }
};

const char* type_name(Value::Type type);

// Parse a whole document; `what` names it in error messages. Throws InvalidArgument.
Value parse(std::string_view text, const std::string& what);

}  // namespace fastinv::json
