// Study files: parsing, expansion into cells, cell names, and the check of every cell's options.
#include "launch/study_file.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "compression/criterion_registry.h"
#include "compression/strategy_registry.h"
#include "launch/config.h"

namespace winnow::launch {

namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

// The values of a [grid] line: separated by spaces or commas; "..." keeps a list as one value.
std::vector<std::string> split_values(const std::string& text, const std::string& where) {
  std::vector<std::string> values;
  std::string current;
  bool quoted = false, have = false;
  for (char c : text) {
    if (c == '"') {
      quoted = !quoted;
      have = true;
    } else if (!quoted && (c == ' ' || c == '\t' || c == ',')) {
      if (have) values.push_back(current);
      current.clear();
      have = false;
    } else {
      current += c;
      have = true;
    }
  }
  if (quoted) throw ConfigError(where + ": expected a closing '\"', got '" + text + "'");
  if (have) values.push_back(current);
  return values;
}

void add_option(std::vector<OptionValue>& options, const std::string& key, const std::string& value,
                const std::string& where) {
  for (const auto& [k, v] : options)
    if (k == key) throw ConfigError(where + ": option '" + key + "' is given twice");
  options.emplace_back(key, value);
}

std::string safe_name(const std::string& text) {
  std::string name;
  for (char c : text) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-';
    name += keep ? c : '_';
  }
  return name.empty() ? "_" : name;
}

// The name a grid option has in cell names: its last component, unless another grid option
// shares it.
std::vector<std::string> short_keys(const std::vector<GridAxis>& grid) {
  std::map<std::string, int> uses;
  std::vector<std::string> last;
  for (const auto& axis : grid) {
    const auto dot = axis.key.rfind('.');
    last.push_back(dot == std::string::npos ? axis.key : axis.key.substr(dot + 1));
    ++uses[last.back()];
  }
  for (size_t i = 0; i < grid.size(); ++i)
    if (uses[last[i]] > 1) last[i] = grid[i].key;
  return last;
}

void set_option(std::vector<OptionValue>& options, const OptionValue& option) {
  for (auto& [k, v] : options)
    if (k == option.first) {
      v = option.second;
      return;
    }
  options.push_back(option);
}

}  // namespace

StudyFile parse_study_file(const std::string& text, const std::string& source) {
  StudyFile study;
  study.source = source;
  study.text = text;
  std::string section;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = source + ":" + std::to_string(number);
    const auto comment = line.find_first_of("#;");
    line = trim(comment == std::string::npos ? line : line.substr(0, comment));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') throw ConfigError(where + ": expected [section], got '" + line + "'");
      section = trim(line.substr(1, line.size() - 2));
      if (section.rfind("variant.", 0) == 0) {
        const std::string name = section.substr(8);
        if (name.empty() || safe_name(name) != name)
          throw ConfigError(where + ": expected a variant name of letters, digits and ._+-, got '" +
                            name + "'");
        for (const auto& v : study.variants)
          if (v.name == name) throw ConfigError(where + ": variant '" + name + "' is given twice");
        study.variants.push_back({name, {}});
      } else if (section != "study" && section != "options" && section != "grid") {
        throw ConfigError(where + ": expected a section [study], [options], [grid] or " +
                          "[variant.NAME], got [" + section + "]");
      }
      continue;
    }
    const auto equals = line.find('=');
    if (equals == std::string::npos || section.empty())
      throw ConfigError(where + ": expected 'key = value' under a [section], got '" + line + "'");
    const std::string key = trim(line.substr(0, equals));
    const std::string value = trim(line.substr(equals + 1));
    if (key.empty()) throw ConfigError(where + ": expected 'key = value', got '" + line + "'");
    if (section == "study") {
      if (key == "config") {
        study.base_config = value;
      } else if (key == "dir") {
        study.dir = value;
      } else if (key == "init_from") {
        study.init_from = value;
      } else if (key == "ranks") {
        try {
          size_t used = 0;
          study.ranks = std::stoi(value, &used);
          if (used != value.size() || study.ranks < 1) throw std::invalid_argument(value);
        } catch (const std::exception&) {
          throw ConfigError(where + ": [study] ranks: expected a positive integer, got '" + value +
                            "'");
        }
      } else {
        throw ConfigError(where + ": [study] takes config, dir, ranks and init_from; got '" + key +
                          "'");
      }
      continue;
    }
    if (key == "train.run_dir" || key == "config")
      throw ConfigError(where + ": '" + key +
                        "' is set by the study ([study] config; run directories are cells)");
    if (section == "options") {
      add_option(study.options, key, value, where);
    } else if (section == "grid") {
      for (const auto& axis : study.grid)
        if (axis.key == key)
          throw ConfigError(where + ": grid option '" + key + "' is given twice");
      auto values = split_values(value, where);
      if (values.empty())
        throw ConfigError(where + ": grid option '" + key + "': expected at least one value");
      std::set<std::string> seen;
      for (const auto& v : values)
        if (!seen.insert(v).second)
          throw ConfigError(where + ": grid option '" + key + "': value '" + v +
                            "' is given twice");
      study.grid.push_back({key, std::move(values)});
    } else {
      add_option(study.variants.back().options, key, value, where);
    }
  }
  if (study.grid.empty() && study.variants.empty())
    throw ConfigError(source +
                      ": empty grid: expected options with values under [grid] or at least one "
                      "[variant.NAME] section");
  if (study.base_config.empty())
    throw ConfigError(source + ": expected the base config as 'config = FILE' under [study]");
  return study;
}

StudyFile read_study_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read the study file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  StudyFile study = parse_study_file(text.str(), path);
  if (study.dir.empty()) study.dir = "runs/" + std::filesystem::path(path).stem().string();
  return study;
}

std::vector<StudyCell> expand_cells(const StudyFile& study) {
  std::vector<StudyVariant> variants = study.variants;
  if (variants.empty()) variants.push_back({"", {}});
  const auto keys = short_keys(study.grid);
  std::vector<StudyCell> cells;
  std::set<std::string> names;
  for (const auto& variant : variants) {
    // An odometer over the grid: index[i] selects a value of grid[i], the last one fastest.
    std::vector<size_t> index(study.grid.size(), 0);
    while (true) {
      StudyCell cell;
      cell.variant = variant.name;
      cell.options = study.options;
      for (const auto& option : variant.options) set_option(cell.options, option);
      std::string name = variant.name;
      for (size_t i = 0; i < study.grid.size(); ++i) {
        const OptionValue value{study.grid[i].key, study.grid[i].values[index[i]]};
        cell.grid.push_back(value);
        set_option(cell.options, value);
        name += (name.empty() ? "" : ",") + safe_name(keys[i]) + "=" + safe_name(value.second);
      }
      cell.name = name;
      if (!names.insert(name).second)
        throw ConfigError(study.source + ": two cells would share the directory '" + name +
                          "' (values that differ only in characters other than letters, digits "
                          "and ._+-); expected distinct names");
      cells.push_back(std::move(cell));
      size_t i = study.grid.size();
      while (i > 0 && ++index[i - 1] == study.grid[i - 1].values.size()) index[--i] = 0;
      if (i == 0) break;
    }
  }
  return cells;
}

std::vector<std::string> cell_train_options(const StudyCell& cell) {
  std::vector<std::string> args;
  for (const auto& [key, value] : cell.options) args.push_back("--" + key + "=" + value);
  return args;
}

namespace {

void check_method(const StageSection& stage, const std::string& prefix) {
  if (stage.reduction.criterion == "none") return;
  for (const auto& [option, value, known] :
       {std::make_tuple(std::string("criterion"), stage.reduction.criterion,
                        compression::known_criteria()),
        std::make_tuple(std::string("strategy"), stage.reduction.strategy,
                        compression::known_strategies())}) {
    bool found = false;
    std::string list;
    for (const auto& name : known) {
      found = found || name == value;
      list += (list.empty() ? "" : ", ") + name;
    }
    if (!found)
      throw ConfigError(prefix + "." + option + ": expected one of " + list + "; got '" + value +
                        "'");
  }
}

}  // namespace

void validate_cells(const StudyFile& study, const std::vector<StudyCell>& cells, int ranks) {
  if (!std::filesystem::is_regular_file(study.base_config))
    throw ConfigError(study.source + ": [study] config: cannot read the base config '" +
                      study.base_config + "'");
  if (!study.init_from.empty() && !std::filesystem::is_regular_file(study.init_from))
    throw ConfigError(study.source +
                      ": [study] init_from: expected a weights file (model.h5 or a " +
                      "checkpoint), cannot read '" + study.init_from +
                      "' (run the study or training that writes it first)");
  for (const auto& cell : cells) {
    try {
      std::vector<std::string> args = {"--config", study.base_config, "--train.run_dir",
                                       study.dir + "/" + cell.name};
      for (const auto& option : cell_train_options(cell)) args.push_back(option);
      RunConfig config;
      bool help = false;
      boost::program_options::options_description extra;
      parse_run_config(args, extra, config, help);
      validate(config, ranks);
      planner_config(config);  // the lists of compress.*, stage.*.* and gate.layers
      check_method(config.compress, "compress");
      for (const auto& [name, stage] : config.compress.stage) check_method(stage, "stage." + name);
    } catch (const ConfigError& e) {
      throw ConfigError(study.source + ": cell '" + cell.name + "': " + e.what());
    }
  }
}

}  // namespace winnow::launch
