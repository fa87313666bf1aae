// Implements run_cli: the subcommand table, usage, and errors turned into exit codes.
#include "launch/cli.h"

#include <torch/torch.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "data/error_text.h"
#include "dist/agreed_error.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/run_setup.h"

namespace {

using winnow::launch::Args;

struct Subcommand {
  const char* name;
  int (*run)(const Args&);
  const char* summary;
};

// One line per subcommand.
const Subcommand kSubcommands[] = {
    {"prepare", winnow::launch::prepare_command, "convert a dataset to winnow's HDF5 format"},
    {"train", winnow::launch::train_command,
     "train a ViT or GPT (on one rank, or many under mpirun/srun)"},
    {"eval", winnow::launch::eval_command, "evaluate the weights a training run saved"},
    {"import", winnow::launch::import_command,
     "PyTorch weights (torchvision ViT, nanoGPT) -> winnow weights"},
    {"export", winnow::launch::export_command,
     "winnow weights -> a PyTorch state dict (torchvision ViT, nanoGPT)"},
    {"prune", winnow::launch::prune_command,
     "remove blocks physically: a co-scheduled run's pruned ones, a list, or ShortGPT's"},
    {"inspect", winnow::launch::inspect_command,
     "show a checkpoint: step, config, parameter table (--json for scripts)"},
    {"bench", winnow::launch::bench_command,
     "time training steps against the machine's matmul rate"},
    {"bench-tokens", winnow::launch::bench_tokens_command,
     "time dense vs token-reduction methods at matched FLOPs, interleaved"},
    {"bench-ltmp", winnow::launch::bench_ltmp_command,
     "learned thresholds at inference: padded batch vs one pass per sample vs dense"},
    {"bench-plans", winnow::launch::bench_plans_command,
     "time token-evolution statistics and layer gates against the dense step, interleaved"},
    {"bench-dist", winnow::launch::bench_dist_command,
     "gradient sync: bucketed vs raw all-reduce, communication share of a step"},
    {"study", winnow::launch::study_command,
     "run a study file's grid of training runs (resumable), report mean ± std over seeds"},
};

void print_usage(std::ostream& out) {
  out << "usage: winnow <command> [options]\n\n"
         "Trains transformers with token reduction inside the forward pass.\n\ncommands:\n";
  for (const auto& c : kSubcommands)
    out << "  " << c.name << std::string(14 - std::strlen(c.name), ' ') << c.summary << "\n";
  out << "\n`winnow <command> --help` lists every option of a command with its default and "
         "meaning.\n";
}

// Prints an error that is this rank's own, and ends the job: every rank, since the others may be
// waiting for this one in a collective.
int fail(const std::string& message, int code) {
  auto& comm = winnow::launch::active_communicator();
  const std::string who = comm && comm->world_size() > 1
                              ? "winnow (rank " + std::to_string(comm->rank()) + "): "
                              : "winnow: ";
  std::cerr << "\n" << who << "error: " << message << std::endl;
  if (comm && comm->world_size() > 1) comm->abort(code);  // no rank may wait for this one
  return code;
}

// An error every rank raised together (dist::AgreedError): rank 0 prints it once, and every rank
// ends normally with `code` (nobody waits in a collective, so nobody needs killing).
int fail_together(const std::string& message, int code) {
  auto& comm = winnow::launch::active_communicator();
  if (!comm || comm->is_root()) std::cerr << "\nwinnow: error: " << message << std::endl;
  return code;
}

}  // namespace

namespace winnow::launch {

int run_cli(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    print_usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  if (name == "--version") {
    std::cout << "winnow 0.1.0 (LibTorch " << TORCH_VERSION << ")\n";
    return 0;
  }
  Args args(argv + 2, argv + argc);
  for (const auto& c : kSubcommands) {
    if (name != c.name) continue;
    try {
      return c.run(args);
    } catch (const winnow::launch::ConfigError& e) {
      return fail(winnow::data::error_message(e), 2);
    } catch (const winnow::dist::AgreedError& e) {
      return fail_together(winnow::data::error_message(e), 1);
    } catch (const std::exception& e) {
      // c10::Error included: its message and context, never the C++ backtrace.
      return fail(winnow::data::error_message(e), 1);
    }
  }
  std::cerr << "winnow: unknown command '" << name << "'\n\n";
  print_usage(std::cerr);
  return 2;
}

}  // namespace winnow::launch
