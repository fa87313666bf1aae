// Test tool for the PyTorch interop check: runs the model of a winnow weights file on the inputs
// of a torch.save file and writes its logits as a torch.save file.
//   interop_logits WEIGHTS.h5 INPUT.pt LOGITS.pt
// INPUT.pt holds {"input": images [B, C, H, W] float or tokens [B, T] int64}; LOGITS.pt gets
// {"logits": [B, classes] or [B, T, vocab]}.
#include <iostream>

#include "launch/stored_model.h"
#include "train/interop_torch_file.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: interop_logits WEIGHTS.h5 INPUT.pt LOGITS.pt\n";
    return 2;
  }
  try {
    auto stored = winnow::launch::load_stored_model(argv[1]);
    const auto inputs =
        winnow::train::state_dict_of(winnow::train::read_torch_file(argv[2]), argv[2]);
    const auto input = winnow::train::find_tensor(inputs, "input");
    TORCH_CHECK(input.defined(), argv[2], ": expected a tensor named 'input'");
    torch::NoGradGuard no_grad;
    stored.model->eval();
    const auto logits = stored.model->forward(input, {}).logits;
    winnow::train::write_torch_state_dict({{"logits", logits}}, argv[3]);
  } catch (const std::exception& e) {
    std::cerr << "interop_logits: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
