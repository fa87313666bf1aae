// The analytic FLOPs model.
#include <gtest/gtest.h>

#include "compression/flops.h"

using namespace winnow::compression;

TEST(Flops, BlockFormula) {
  // C = 4, M = 16, N = 10 tokens: qkv 2·10·4·12 + attention 4·10·10·4 + proj 2·10·4·4 + MLP
  // 4·10·4·16
  EXPECT_DOUBLE_EQ(block_forward_flops({4, 16}, 10, 10), 960 + 1600 + 320 + 2560);
}

TEST(Flops, HalvingTokensQuartersAttentionAndHalvesTheRest) {
  const BlockShape s{192, 768};
  const double full = block_forward_flops(s, 196, 196), half = block_forward_flops(s, 98, 98);
  const double linear_full = 2.0 * 196 * 192 * (3 * 192 + 192 + 2 * 768);
  const double attention_full = 4.0 * 196 * 196 * 192;
  EXPECT_DOUBLE_EQ(full, linear_full + attention_full);
  EXPECT_DOUBLE_EQ(half, linear_full / 2 + attention_full / 4);
}

TEST(Flops, Linear) {
  EXPECT_DOUBLE_EQ(linear_forward_flops(3, 5, 7), 210);
}
