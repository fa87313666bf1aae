// splitmix64-based hash folding for fingerprints and checksums.
#include "dist/hashing.h"

#include <cstring>

namespace winnow::dist {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t hash_combine(uint64_t seed, uint64_t value) {
  return splitmix64(seed ^ splitmix64(value));
}

uint64_t hash_bytes(uint64_t seed, const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  uint64_t hash = hash_combine(seed, size);
  size_t offset = 0;
  for (; offset + sizeof(uint64_t) <= size; offset += sizeof(uint64_t)) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + offset, sizeof(word));
    hash = hash_combine(hash, word);
  }
  if (offset < size) {
    uint64_t tail = 0;
    std::memcpy(&tail, bytes + offset, size - offset);
    hash = hash_combine(hash, tail);
  }
  return hash;
}

}  // namespace winnow::dist
