// AgreedError: an error that every rank of the job raises together, after a collective told all
// of them that it happened (rank 0's save failed, say). Because no rank is left waiting in a
// collective, the CLI needs no MPI_Abort for it: rank 0 prints the message once and every rank
// ends normally with exit code 1.
#pragma once

#include <stdexcept>
#include <string>

namespace winnow::dist {

class AgreedError : public std::runtime_error {
 public:
  explicit AgreedError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace winnow::dist
