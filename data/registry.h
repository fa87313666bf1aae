// Registry: the one shape of every extension point (criteria, strategies, models, communicators,
// data-file formats, planners, layer gates): an explicit list of named factories.
#pragma once

#include <c10/util/Exception.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace winnow::data {

// An explicit, ordered list of named factories, each making a `Product` from `Args`. Entries are
// written out in one list where the registry is defined (one line per entry, no static
// self-registration), so reading that list tells every name there is. The order of the list is
// the order of names(), used for --help texts, validation messages and conformance tests.
//
// Header-only and dependent on nothing but c10, so every library can hold its registries in it.
template <class Product, class... Args>
class Registry {
 public:
  using Factory = std::function<Product(Args...)>;

  struct Entry {
    std::string name;  // what configs and files say, e.g. "cls_attention"
    std::string help;  // one line for --help texts and docs
    Factory create;
  };

  // `unknown_name_error` is the message for a name not in the list: "{name}" in it becomes the
  // name asked for and "{names}" the known names joined by ", " (each registry keeps the wording
  // its users and tests know, e.g. "unknown token criterion '{name}'; known criteria: {names}").
  // A name listed twice is refused (it would make one of the entries unreachable).
  Registry(std::string unknown_name_error, std::vector<Entry> entries)
      : unknown_name_error_(std::move(unknown_name_error)), entries_(std::move(entries)) {
    for (size_t i = 0; i < entries_.size(); ++i) {
      TORCH_CHECK(!entries_[i].name.empty(), "registry: entry ", i, " has an empty name");
      TORCH_CHECK(entries_[i].create, "registry: entry '", entries_[i].name, "' has no factory");
      for (size_t j = 0; j < i; ++j)
        TORCH_CHECK(entries_[j].name != entries_[i].name, "registry: '", entries_[i].name,
                    "' is registered twice (entries ", j, " and ", i, ")");
    }
  }

  // The product of the entry `name`; an unknown name throws c10::Error listing the known ones.
  Product create(const std::string& name, Args... args) const {
    const Entry* entry = find(name);
    TORCH_CHECK(entry != nullptr, unknown_name_message(name));
    return entry->create(std::forward<Args>(args)...);
  }

  // The entry `name`, or null (for callers that word the error themselves).
  const Entry* find(const std::string& name) const {
    for (const auto& entry : entries_)
      if (entry.name == name) return &entry;
    return nullptr;
  }
  bool contains(const std::string& name) const { return find(name) != nullptr; }

  // Registered names, in list order.
  std::vector<std::string> names() const {
    std::vector<std::string> names;
    names.reserve(entries_.size());
    for (const auto& entry : entries_) names.push_back(entry.name);
    return names;
  }
  const std::vector<Entry>& entries() const { return entries_; }

  // The error for an unknown `name` (already escaped by the caller where it comes from a file).
  std::string unknown_name_message(const std::string& name) const {
    std::string known;
    for (const auto& entry : entries_) known += (known.empty() ? "" : ", ") + entry.name;
    // One pass, so a name that itself contains "{names}" is not expanded.
    std::string message;
    const std::string& pattern = unknown_name_error_;
    for (size_t at = 0; at < pattern.size();) {
      if (pattern.compare(at, 7, "{names}") == 0) {
        message += known;
        at += 7;
      } else if (pattern.compare(at, 6, "{name}") == 0) {
        message += name;
        at += 6;
      } else {
        message += pattern[at++];
      }
    }
    return message;
  }

 private:
  std::string unknown_name_error_;
  std::vector<Entry> entries_;
};

}  // namespace winnow::data
