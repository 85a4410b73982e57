// Buffer slots reused by liveness, shared by the CPU and GPU plans: a value takes the
// smallest free slot that fits it (or a new one) and gives it back after its last reader,
// so an arena stays a few values deep whatever the network's length.
#pragma once
#include <cstdint>
#include <vector>

namespace fastinv {

class SlotAllocator {
 public:
  int allocate(int64_t size) {
    int best = -1;
    for (size_t s = 0; s < size_.size(); ++s)
      if (free_[s] && size_[s] >= size && (best < 0 || size_[s] < size_[size_t(best)])) best = int(s);
    if (best < 0) {
      best = int(size_.size());
      size_.push_back(size);
      free_.push_back(false);
    }
    free_[size_t(best)] = false;
    return best;
  }
  void release(int slot) { free_[size_t(slot)] = true; }
  const std::vector<int64_t>& sizes() const { return size_; }

 private:
  std::vector<int64_t> size_;
  std::vector<bool> free_;
};

}  // namespace fastinv
