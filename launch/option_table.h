// Option table: each option declared once — its dotted name, the field it sets, its default (the
// field's initial value), its help text and its check — from which the command-line and INI
// parsing, --help, validation and the config.ini output are all generated.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// The field `member` (a member path such as model.dim) of a configuration, as the accessor an
// OptionList binds: it reads a const configuration and writes a mutable one.
#define WINNOW_FIELD(member)  \
  [](auto& config) -> auto& { \
    return config.member;     \
  }

namespace winnow::launch {

// A double as the fewest significant digits that read back to the same value (0.001, 1e-05,
// 0.33333333333333331): config.ini round-trips exactly and --help shows what one would type.
std::string real_text(double value);

// A field's value as option text: --help's default and config.ini's value. Booleans print as
// true/false (config files with 1/0, as config.ini files before the table have, still parse).
template <typename T>
std::string option_text(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_floating_point_v<T>) {
    return real_text(value);
  } else {
    static_assert(std::is_integral_v<T>, "options are strings, booleans, integers or doubles");
    return std::to_string(value);
  }
}

// A check of one value: "" when it is acceptable, else what was expected and what was got (the
// caller prefixes the option's name).
template <typename T>
using OptionCheck = std::function<std::string(const T&)>;

// T, in a form template argument deduction does not look into (the value type comes from the
// field; a check lambda then converts to OptionCheck of it).
template <typename T>
struct NotDeduced {
  using type = T;
};

// The common checks. `note` follows the bound in the message, e.g. " (0 = all)".
inline auto at_least(double bound, std::string note = "") {
  return [bound, note](const auto& value) -> std::string {
    if (static_cast<double>(value) >= bound) return "";
    return "expected >= " + real_text(bound) + note + ", got " + option_text(value);
  };
}
inline auto above(double bound) {
  return [bound](const auto& value) -> std::string {
    if (static_cast<double>(value) > bound) return "";
    return "expected > " + real_text(bound) + ", got " + option_text(value);
  };
}
inline auto one_of(std::vector<std::string> names) {
  return [names = std::move(names)](const std::string& value) -> std::string {
    std::string list;
    for (const auto& name : names) {
      if (name == value) return "";
      list += (list.empty() ? "" : ", ") + name;
    }
    return "expected one of " + list + "; got '" + value + "'";
  };
}

// One option of a configuration of type `Config`, type-erased so that options of every value
// type sit in one list.
template <typename Config>
struct Option {
  std::string key;   // within its section: "steps" of train.steps
  std::string help;  // --help's meaning
  // A path such as data.train: --help shows this placeholder (e.g. FILE) instead of a default,
  // and config.ini has the key only when the path is set.
  std::string value_name;
  // false: a per-invocation option (train.stop_at, fault injection), not written to config.ini,
  // so that --config and --resume of a run's config.ini do not repeat it.
  bool stored = true;
  // A Boost value that writes the field of `config`; its default is the field's current value.
  std::function<boost::program_options::value_semantic*(Config&)> bind;
  std::function<std::string(const Config&)> text;   // the field's value as option text
  std::function<std::string(const Config&)> check;  // empty, or OptionCheck on the field
};

// The options of one section, in --help and config.ini order; built by chained calls, e.g.
//   OptionList<RunConfig>()
//       .add("dim", WINNOW_FIELD(model.dim), "width C (divisible by heads)", at_least(1))
// Names are `prefix`.key, the prefix given where the list is used, so that one list can serve
// several sections ([compress] and every [stage.NAME]).
template <typename Config>
class OptionList {
 public:
  // An option bound to the field `field` returns (WINNOW_FIELD); its default is the field's value
  // in the configuration it is bound to, i.e. the initial value config.h gives it.
  template <typename Field, typename T = std::decay_t<std::invoke_result_t<const Field&, Config&>>>
  OptionList& add(std::string key, Field field, std::string help,
                  typename NotDeduced<OptionCheck<T>>::type check = {}) {
    Option<Config> option;
    option.key = std::move(key);
    option.help = std::move(help);
    option.bind = [field](Config& config) -> boost::program_options::value_semantic* {
      T& value = field(config);
      return boost::program_options::value(&value)->default_value(value, option_text(value));
    };
    option.text = [field](const Config& config) { return option_text(field(config)); };
    if (check) option.check = [field, check](const Config& config) { return check(field(config)); };
    options_.push_back(std::move(option));
    return *this;
  }

  // A path option (no default; omitted from config.ini while empty), shown as `value_name`.
  template <typename Field>
  OptionList& add_path(std::string key, Field field, std::string value_name, std::string help) {
    Option<Config> option;
    option.key = std::move(key);
    option.help = std::move(help);
    option.value_name = std::move(value_name);
    const std::string shown = option.value_name;
    option.bind = [field, shown](Config& config) -> boost::program_options::value_semantic* {
      return boost::program_options::value(&field(config))->value_name(shown);
    };
    option.text = [field](const Config& config) { return option_text(field(config)); };
    options_.push_back(std::move(option));
    return *this;
  }

  // Marks the option added last as per-invocation: parsed, but not written to config.ini.
  OptionList& not_stored() {
    options_.back().stored = false;
    return *this;
  }

  const std::vector<Option<Config>>& options() const { return options_; }

  // Adds every option, named `prefix`.key and bound to `config`, to `group`.
  void describe(const std::string& prefix, Config& config,
                boost::program_options::options_description& group) const {
    for (const auto& option : options_) {
      const std::string name = prefix + "." + option.key;
      group.add_options()(name.c_str(), option.bind(config), option.help.c_str());
    }
  }

  // The stored options as INI lines "key = value".
  void write_ini(const Config& config, std::ostream& out) const {
    for (const auto& option : options_) {
      if (!option.stored) continue;
      const std::string text = option.text(config);
      if (!option.value_name.empty() && text.empty()) continue;
      out << option.key << " = " << text << "\n";
    }
  }

  // The first failed check as "`prefix`.key: expected ..., got ...", or "".
  std::string first_error(const std::string& prefix, const Config& config) const {
    for (const auto& option : options_) {
      if (!option.check) continue;
      const std::string error = option.check(config);
      if (!error.empty()) return prefix + "." + option.key + ": " + error;
    }
    return "";
  }

 private:
  std::vector<Option<Config>> options_;
};

// A section of a configuration: the INI [name] and the dotted prefix of its options, the heading
// --help lists them under, and the options.
template <typename Config>
struct OptionSection {
  std::string name;
  std::string title;
  OptionList<Config> options;
};

}  // namespace winnow::launch
