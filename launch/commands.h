// The `winnow` subcommands. Each takes the arguments after its name and returns an exit code;
// errors are thrown (ConfigError: exit 2; anything else: exit 1) and handled in main().
#pragma once

#include <string>
#include <vector>

namespace winnow::launch {

using Args = std::vector<std::string>;

int prepare_command(const Args& args);
int train_command(const Args& args);
int eval_command(const Args& args);
int bench_command(const Args& args);
int bench_tokens_command(const Args& args);

}  // namespace winnow::launch
