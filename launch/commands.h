// The `winnow` subcommands. Each takes the arguments after its name and returns an exit code;
// errors are thrown (ConfigError: exit 2; anything else: exit 1) and handled in main().
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace winnow::launch {

using Args = std::vector<std::string>;

int prepare_command(const Args& args);
int train_command(const Args& args);
int eval_command(const Args& args);
int bench_command(const Args& args);
int bench_tokens_command(const Args& args);
int bench_ltmp_command(const Args& args);
int bench_plans_command(const Args& args);
int bench_dist_command(const Args& args);
int inspect_command(const Args& args);
int prune_command(const Args& args);
int import_command(const Args& args);
int export_command(const Args& args);
int study_command(const Args& args);

// Splits a command's arguments into its one positional argument (an input file; "" if none) and
// its options: a token starting with "-" takes the next token as its value unless it is --help/-h
// or has "=VALUE". Throws ConfigError for more than one positional argument.
std::pair<std::string, Args> split_positional(const Args& args, const std::string& command);

}  // namespace winnow::launch
