// fuzz_commands: runs many `winnow` command lines in one process, through the same run_cli that
// the executable's main() calls: the fuzzer's fast path, so that thousands of mutated inputs can
// go through `import`, `inspect --verify`, `train --resume`, `eval` and `train --data.train`
// under AddressSanitizer + UBSan without paying a LibTorch process start for each.
//
// usage: fuzz_commands COMMANDS_FILE TIMEOUT_SECONDS
//   COMMANDS_FILE: one command per line, its arguments separated by tabs, without "winnow".
// For line i it prints "@@ begin i" and, after the command's own output, "@@ end i RC" (RC: the
// exit code run_cli returned), both flushed. A command still running after TIMEOUT_SECONDS ends
// the process with SIGALRM, and a sanitizer report ends it too; the driver
// (tests/fuzz/fuzz_inputs.py --in-process) sees the begin without its end and restarts from the
// next line (`fuzz_commands FILE TIMEOUT FIRST_LINE`).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "launch/cli.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: fuzz_commands COMMANDS_FILE TIMEOUT_SECONDS [FIRST_LINE]\n";
    return 2;
  }
  std::ifstream commands(argv[1]);
  if (!commands) {
    std::cerr << "fuzz_commands: cannot read '" << argv[1] << "'\n";
    return 2;
  }
  const unsigned timeout = static_cast<unsigned>(std::stoul(argv[2]));
  const long first = argc > 3 ? std::stol(argv[3]) : 0;
  std::string line;
  for (long index = 0; std::getline(commands, line); ++index) {
    if (index < first || line.empty()) continue;
    std::vector<std::string> words{"winnow"};
    std::istringstream fields(line);
    for (std::string word; std::getline(fields, word, '\t');) words.push_back(word);
    std::vector<char*> args;
    for (auto& word : words) args.push_back(word.data());
    args.push_back(nullptr);

    std::cout << "@@ begin " << index << std::endl;
    alarm(timeout);
    const int code = winnow::launch::run_cli(static_cast<int>(words.size()), args.data());
    alarm(0);
    std::cerr << std::flush;
    std::cout << "@@ end " << index << " " << code << std::endl;
  }
  return 0;
}
