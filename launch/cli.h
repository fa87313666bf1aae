// The `winnow` command line: dispatches to a subcommand and turns errors into exit codes (2 for
// configuration errors, 1 for everything else), ending every MPI rank on an error. main() is
// this one call; the in-process fuzz harness (tests/fuzz/fuzz_commands.cpp) calls it repeatedly.
#pragma once

namespace winnow::launch {

// argv[0] is the program, argv[1] the subcommand; returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace winnow::launch
