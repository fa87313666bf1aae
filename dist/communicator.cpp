// The backend registry behind make_communicator: one line per backend.
#include "dist/communicator.h"

#include <functional>
#include <sstream>

#include "dist/launch_environment.h"
#include "dist/local_communicator.h"
#include "dist/mpi_communicator.h"

namespace winnow::dist {
namespace {

struct BackendEntry {
  const char* name;
  std::function<std::shared_ptr<Communicator>()> make;
};

std::shared_ptr<Communicator> make_auto();

// The explicit list of backends; "auto" resolves to one of the others.
const std::vector<BackendEntry>& backend_registry() {
  static const std::vector<BackendEntry> registry{
      {"local", [] { return std::make_shared<LocalCommunicator>(); }},
      {"mpi", [] { return std::make_shared<MpiCommunicator>(); }},
      {"auto", make_auto},
  };
  return registry;
}

std::shared_ptr<Communicator> make_auto() {
  return make_communicator(started_by_mpi_launcher() ? "mpi" : "local");
}

}  // namespace

std::vector<std::string> known_backends() {
  std::vector<std::string> names;
  for (const auto& entry : backend_registry()) names.emplace_back(entry.name);
  return names;
}

std::shared_ptr<Communicator> make_communicator(const std::string& backend) {
  for (const auto& entry : backend_registry()) {
    if (backend == entry.name) return entry.make();
  }
  std::ostringstream known;
  for (const auto& name : known_backends()) known << (known.tellp() > 0 ? ", " : "") << name;
  TORCH_CHECK(false, "unknown communicator backend '", backend,
              "'; expected one of: ", known.str());
}

}  // namespace winnow::dist
