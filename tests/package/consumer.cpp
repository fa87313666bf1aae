// Uses winnow's ToMe merge on a plain tensor, as an outside program would.
#include <torch/torch.h>
#include <winnow/compression/method.h>

#include <iostream>

int main() {
  using namespace winnow::compression;
  TokenState state;
  state.x = torch::randn({2, 17, 8});  // [B, N, C]: CLS + 16 tokens
  state.protected_count = 1;
  ScoreContext context;
  context.keys = state.x;  // the similarity metric: any [B, N, D] features
  auto method = Method::make("similarity", "merge");
  auto merged = method.apply(state, context, /*keep_count=*/8);
  const bool ok = merged.tokens() == 9 && merged.size.sum().item<double>() == 2 * 17;
  std::cout << "consumer: " << state.tokens() << " -> " << merged.tokens() << " tokens, size mass "
            << merged.size.sum().item<double>() << (ok ? " (ok)" : " (WRONG)") << std::endl;
  return ok ? 0 : 1;
}
