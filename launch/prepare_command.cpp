// `winnow prepare fashion-mnist|text`: converts source data into winnow's HDF5 formats.
#include <boost/program_options.hpp>

#include <iostream>

#include "data/fashion_mnist.h"
#include "data/text_tokens.h"
#include "launch/commands.h"
#include "launch/config.h"

namespace winnow::launch {
namespace po = boost::program_options;
namespace {

const char* kPrepareUsage =
    "usage: winnow prepare fashion-mnist [--src DIR] --out DIR\n"
    "       winnow prepare text --in FILE [FILE...] --out DIR [--val-fraction F] [--seed S] "
    "[--doc-separator S]\n\n"
    "Converts data to winnow's HDF5 formats (docs/data-format.md):\n"
    "  fashion-mnist  the four gzip'd IDX files -> DIR/train.h5, DIR/test.h5 (images)\n"
    "  text           byte-level tokens (vocab 256), split by documents -> DIR/train.h5, "
    "DIR/val.h5\n";

po::variables_map parse(const Args& args, const po::options_description& options, bool& help) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(options).run(), vm);
    help = vm.count("help") > 0;
    if (!help) po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  return vm;
}

int prepare_fashion_mnist(const Args& args) {
  std::string src = "/usr/share/datasets/fashion-mnist", out;
  po::options_description options("winnow prepare fashion-mnist");
  options.add_options()("help,h", "show this help")(
      "src", po::value(&src)->default_value(src),
      "folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-*.gz "
      "(Debian: apt install dataset-fashion-mnist)")("out", po::value(&out)->required(),
                                                     "output folder");
  bool help = false;
  parse(args, options, help);
  if (help) {
    std::cout << kPrepareUsage << "\n" << options;
    return 0;
  }
  auto s = data::prepare_fashion_mnist(src, out);
  std::cout << "fashion-mnist: " << s.train_count << " train + " << s.test_count
            << " test images of " << s.height << "x" << s.width << ", mean " << s.mean << ", std "
            << s.std << "\n  wrote " << s.train_path << "\n  wrote " << s.test_path << std::endl;
  return 0;
}

int prepare_text(const Args& args) {
  std::vector<std::string> inputs;
  std::string out, separator = "%";
  double val_fraction = 0.1;
  uint64_t seed = 0;
  po::options_description options("winnow prepare text");
  options.add_options()("help,h", "show this help")(
      "in", po::value(&inputs)->multitoken()->required(),
      "input text files (e.g. /usr/share/games/fortunes/*)")("out", po::value(&out)->required(),
                                                             "output folder")(
      "val-fraction", po::value(&val_fraction)->default_value(val_fraction, "0.1"),
      "share of documents in the validation split, in (0, 1)")(
      "seed", po::value(&seed)->default_value(seed), "seed of the document split")(
      "doc-separator", po::value(&separator)->default_value(separator),
      "a line equal to this ends a document (fortune format: %); empty = one document per file");
  bool help = false;
  parse(args, options, help);
  if (help) {
    std::cout << kPrepareUsage << "\n" << options;
    return 0;
  }
  if (!(val_fraction > 0 && val_fraction < 1))
    throw ConfigError("--val-fraction: expected a value in (0, 1), got " +
                      std::to_string(val_fraction));
  auto s = data::prepare_text(inputs, out, val_fraction, seed, separator);
  std::cout << "text: " << s.num_documents << " documents (" << s.train_documents << " train, "
            << s.val_documents << " val), " << s.train_tokens << " + " << s.val_tokens
            << " byte tokens\n  wrote " << s.train_path << "\n  wrote " << s.val_path << std::endl;
  return 0;
}

}  // namespace

int prepare_command(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kPrepareUsage;
    return args.empty() ? 2 : 0;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "fashion-mnist") return prepare_fashion_mnist(rest);
  if (args[0] == "text") return prepare_text(rest);
  throw ConfigError("prepare: unknown dataset '" + args[0] + "'; known: fashion-mnist, text");
}

}  // namespace winnow::launch
