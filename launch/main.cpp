// The `winnow` executable.
#include "launch/cli.h"

int main(int argc, char** argv) {
  return winnow::launch::run_cli(argc, argv);
}
