// 64-bit hashing for bucket fingerprints and replica checksums (deterministic across processes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace winnow::dist {

// Folds `value` into `seed`; order-sensitive, so hashing a list in order distinguishes orders.
// The mixing is splitmix64's finaliser, a fixed function: equal inputs give equal hashes on every
// rank and every run (unlike std::hash, which is free to differ between builds).
uint64_t hash_combine(uint64_t seed, uint64_t value);

// Folds `size` bytes at `data` into `seed`, eight bytes at a time.
uint64_t hash_bytes(uint64_t seed, const void* data, size_t size);

}  // namespace winnow::dist
