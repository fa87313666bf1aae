// Keyed randomness for the data pipeline: a counter-based 64-bit hash and a tiny stream on top.
#pragma once

#include <cstdint>
#include <initializer_list>

namespace winnow::data {

// The splitmix64 finaliser: a bijective 64-bit mixer. Its constants are fixed here so that sample
// orders and synthetic data never change across compilers, platforms or LibTorch versions.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Hash of an ordered tuple of keys, e.g. hash_keys({seed, epoch}) or hash_keys({seed, id, pixel}).
// Different tuples (including different lengths) give unrelated values.
inline uint64_t hash_keys(std::initializer_list<uint64_t> keys) {
  uint64_t h = mix64(0x243F6A8885A308D3ULL ^ keys.size());
  for (uint64_t key : keys) h = mix64(h ^ mix64(key));
  return h;
}

// A splitmix64 stream: next() walks the counter sequence state + k * golden ratio through mix64.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}

  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Unbiased integer in [0, bound) by rejection (bound > 0).
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

  // Uniform double in [0, 1) from the top 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Uniform double in [0, 1) that is a pure function of a key hash.
inline double unit_interval(uint64_t hash) {
  return static_cast<double>(hash >> 11) * 0x1.0p-53;
}

}  // namespace winnow::data
