// Running a study: cell states, cell command lines, the loop that runs them as processes, and
// their submission to Slurm as a job array.
#include "launch/study_run.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "data/atomic_file.h"
#include "train/metrics.h"

namespace winnow::launch {

namespace fs = std::filesystem;

namespace {

// The running cell's process and the stop signal received (the handler passes it on).
volatile sig_atomic_t running_child = 0;
volatile sig_atomic_t stop_signal = 0;

void on_stop_signal(int signal) {
  stop_signal = signal;
  // winnow train saves a checkpoint and stops on SIGTERM; SIGINT would end it without one.
  if (running_child > 0) kill(static_cast<pid_t>(running_child), SIGTERM);
}

void install_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

std::string quoted(const std::string& arg) {
  bool plain = !arg.empty();
  for (char c : arg)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_@%+=:,./-", c));
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command_text(const std::vector<std::string>& command) {
  std::string text;
  for (const auto& arg : command) text += (text.empty() ? "" : " ") + quoted(arg);
  return text;
}

// Runs `command` (command[0] searched on PATH when it has no '/') with stdout and stderr appended
// to `log`; returns the wait status.
int run_logged(const std::vector<std::string>& command, const std::string& log) {
  {
    std::ofstream header(log, std::ios::app);
    header << "==== winnow study: " << command_text(command) << std::endl;
  }
  const pid_t child = fork();
  if (child < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (child == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) _exit(126);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    std::vector<char*> argv;
    for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    const std::string message =
        "winnow study: cannot start " + command[0] + ": " + std::strerror(errno) + "\n";
    (void)!write(STDERR_FILENO, message.data(), message.size());
    _exit(127);
  }
  running_child = child;
  if (stop_signal != 0) kill(child, SIGTERM);  // a signal that came before the pid was known
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  running_child = 0;
  return status;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

std::string log_tail(const std::string& log, size_t lines) {
  std::ifstream in(log);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string text;
  for (const auto& l : last) text += "    | " + l + "\n";
  return text;
}

}  // namespace

CellState cell_state(const std::string& cell_dir) {
  if (fs::exists(fs::path(cell_dir) / "summary.json")) return CellState::kDone;
  const fs::path checkpoints = fs::path(cell_dir) / "checkpoints";
  std::error_code error;
  if (fs::is_directory(checkpoints, error))
    for (const auto& entry : fs::directory_iterator(checkpoints, error)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("step-", 0) == 0 && entry.path().extension() == ".h5")
        return CellState::kInterrupted;
    }
  return CellState::kNew;
}

const char* to_string(CellState state) {
  switch (state) {
    case CellState::kNew:
      return "new";
    case CellState::kInterrupted:
      return "interrupted (resumes)";
    case CellState::kDone:
      return "done";
  }
  return "?";
}

std::vector<std::string> cell_command(const StudyFile& study, const StudyCell& cell,
                                      const std::string& cell_dir, CellState state,
                                      const StudyRunOptions& options) {
  std::vector<std::string> command;
  if (options.ranks > 1)
    command = {
        options.launcher, "--winnow", options.winnow, "-n", std::to_string(options.ranks), "--",
        "train"};
  else
    command = {options.winnow, "train"};
  for (const auto& arg :
       {std::string("--config"), study.base_config, std::string("--train.run_dir"), cell_dir})
    command.push_back(arg);
  if (state == CellState::kInterrupted) {
    command.push_back("--resume");
    command.push_back(cell_dir);
  } else if (!study.init_from.empty()) {
    command.push_back("--init-from");
    command.push_back(study.init_from);
  }
  for (const auto& option : cell_train_options(cell)) command.push_back(option);
  return command;
}

int run_study(const StudyFile& study, const std::vector<StudyCell>& cells,
              const StudyRunOptions& options) {
  using Clock = std::chrono::steady_clock;
  const size_t total = cells.size();
  std::cout << "winnow study: " << total << " cell(s) in " << study.dir << ", " << options.ranks
            << " rank(s) each" << (options.dry_run ? " (dry run)" : "") << std::endl;
  if (!options.dry_run) {
    fs::create_directories(study.dir);
    // The report reads the grid from this copy.
    data::write_file_atomically(study.dir + "/study.ini", study.text);
    install_handlers();
  }
  size_t done = 0, failed = 0, run = 0;
  double run_seconds = 0.0;
  std::vector<std::string> failures;
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto& cell = cells[i];
    const std::string cell_dir = study.dir + "/" + cell.name;
    const CellState state = cell_state(cell_dir);
    const auto command = cell_command(study, cell, cell_dir, state, options);
    if (options.dry_run) {
      std::cout << "  [" << to_string(state) << "] " << cell.name << "\n    "
                << (state == CellState::kDone ? "(skipped)" : command_text(command)) << "\n";
      continue;
    }
    if (state == CellState::kDone) {
      ++done;
      std::cout << "[" << done + failed << "/" << total << "] " << cell.name
                << ": done before, skipped" << std::endl;
      continue;
    }
    std::cout << "[" << done + failed + 1 << "/" << total << "] " << cell.name << ": "
              << (state == CellState::kInterrupted ? "resuming" : "training") << " (log "
              << cell_dir << "/train.log)" << std::endl;
    fs::create_directories(cell_dir);
    const std::string log = cell_dir + "/train.log";
    const auto start = Clock::now();
    const int status = run_logged(command, log);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (stop_signal != 0) {
      std::cout << "winnow study: stopped by " << strsignal(stop_signal) << " during " << cell.name
                << " (" << describe_status(status) << "); run the same command again to resume"
                << std::endl;
      return 128 + stop_signal;
    }
    ++run;
    run_seconds += seconds;
    const bool ok =
        WIFEXITED(status) && WEXITSTATUS(status) == 0 && cell_state(cell_dir) == CellState::kDone;
    if (ok) {
      ++done;
    } else {
      ++failed;
      failures.push_back(cell.name);
      std::cout << "  FAILED: " << cell.name << " (" << describe_status(status)
                << (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? ", but no summary.json" : "")
                << "); log " << log << ", last lines:\n"
                << log_tail(log, 8);
    }
    const size_t remaining = total - done - failed;
    std::cout << "study: " << done << "/" << total << " done, " << failed << " failed, "
              << remaining << " to go; " << cell.name << " took "
              << train::format_duration(seconds);
    if (remaining > 0)
      std::cout << ", ETA " << train::format_duration(run_seconds / run * remaining);
    std::cout << std::endl;
  }
  if (options.dry_run) return 0;
  if (failed == 0) {
    std::cout << "winnow study: all " << total << " cells done; `winnow study report " << study.dir
              << "` tabulates them" << std::endl;
    return 0;
  }
  std::cout << "winnow study: " << failed << " of " << total << " cell(s) failed:";
  for (const auto& name : failures) std::cout << " " << name;
  std::cout << "\n  their logs are in " << study.dir
            << "/CELL/train.log; run the same command again to retry them" << std::endl;
  return 1;
}

}  // namespace winnow::launch

namespace winnow::launch {

namespace {

// Slurm's --array list of `indices` (ascending): runs of consecutive indices as ranges, "0-3,5".
std::string array_spec(const std::vector<size_t>& indices) {
  std::string spec;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    spec += (spec.empty() ? "" : ",") + std::to_string(indices[i]);
    if (j > i) spec += "-" + std::to_string(indices[j]);
    i = j + 1;
  }
  return spec;
}

}  // namespace

int submit_study_to_slurm(const StudyFile& study, const std::vector<StudyCell>& cells,
                          const StudyRunOptions& options, const StudySlurmOptions& slurm) {
  const fs::path dir = fs::absolute(study.dir);
  fs::create_directories(dir);
  data::write_file_atomically((dir / "study.ini").string(), study.text);
  // Every cell, so that an array index names the same cell in every submission.
  std::string list;
  std::vector<size_t> pending;
  for (size_t i = 0; i < cells.size(); ++i) {
    const fs::path cell_dir = dir / cells[i].name;
    list += cell_dir.string() + "\n";
    const CellState state = cell_state(cell_dir.string());
    std::cout << "  [" << to_string(state) << "] " << i << " " << cells[i].name << std::endl;
    if (state == CellState::kDone) continue;
    pending.push_back(i);
    if (options.dry_run) continue;
    // The template adds --train.run_dir (the cell's directory) and --resume when it has
    // checkpoints; the rest of the cell's `winnow train` arguments, one a line.
    // (The template drops --init-from when it resumes the cell.)
    std::string arguments = "--config\n" + fs::absolute(study.base_config).string() + "\n";
    if (!study.init_from.empty())
      arguments += "--init-from\n" + fs::absolute(study.init_from).string() + "\n";
    for (const auto& option : cell_train_options(cells[i])) {
      if (option.find('\n') != std::string::npos)
        throw std::runtime_error(
            "study run --slurm: cell " + cells[i].name +
            ": an option value with a line break cannot go to Slurm: " + option);
      arguments += option + "\n";
    }
    fs::create_directories(cell_dir);
    data::write_file_atomically((cell_dir / "train.args").string(), arguments);
  }
  const std::string cells_file = (dir / "slurm-cells.txt").string();
  if (pending.empty()) {
    std::cout << "winnow study: all " << cells.size() << " cells of " << study.dir
              << " are done; nothing to submit" << std::endl;
    return 0;
  }
  std::vector<std::string> command = {slurm.sbatch, "--parsable"};
  if (slurm.wait) command.push_back("--wait");
  for (const auto& arg :
       {"--job-name=winnow-study-" + dir.filename().string(),
        "--ntasks=" + std::to_string(options.ranks), "--array=" + array_spec(pending),
        "--output=" + (dir / "slurm-%A_%a.out").string()})
    command.push_back(arg);
  for (const auto& arg : slurm.sbatch_args) command.push_back(arg);
  command.push_back(slurm.batch_template);
  std::cout << "winnow study: " << pending.size() << " of " << cells.size()
            << " cell(s) to Slurm as one job array, " << options.ranks << " task(s) each"
            << (options.dry_run ? " (dry run)" : "") << ":\n  WINNOW=" << quoted(options.winnow)
            << " WINNOW_STUDY_CELLS=" << quoted(cells_file) << " " << command_text(command)
            << std::endl;
  if (options.dry_run) return 0;
  data::write_file_atomically(cells_file, list);
  // sbatch passes the submitting environment on (--export=ALL, its default).
  setenv("WINNOW", options.winnow.c_str(), 1);
  setenv("WINNOW_STUDY_CELLS", cells_file.c_str(), 1);
  const std::string log = (dir / "slurm-submit.log").string();
  const auto log_size = fs::exists(log) ? fs::file_size(log) : 0;
  const int status = run_logged(command, log);
  std::string output;
  {
    std::ifstream in(log);
    in.seekg(static_cast<std::streamoff>(log_size));
    std::stringstream text;
    text << in.rdbuf();
    output = text.str();
    output = output.substr(output.find('\n') + 1);  // after run_logged's header line
  }
  std::string job;
  for (char c : output) {
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    job += c;
  }
  if (job.empty()) {
    std::cout << "winnow study: sbatch failed (" << describe_status(status) << "):\n"
              << log_tail(log, 8);
    return 1;
  }
  std::cout << "winnow study: submitted job array " << job << "; each cell's output goes to "
            << study.dir << "/CELL/train.log (`squeue -j " << job << "` follows it)" << std::endl;
  if (!slurm.wait) {
    std::cout << "  when it has ended: `winnow study report " << study.dir
              << "`; a cell that failed or was cancelled is submitted again by the same command"
              << std::endl;
    return 0;
  }
  std::vector<std::string> unfinished;
  for (size_t i : pending)
    if (cell_state((dir / cells[i].name).string()) != CellState::kDone)
      unfinished.push_back(cells[i].name);
  if (unfinished.empty()) {
    std::cout << "winnow study: job array " << job << " ended; all " << cells.size()
              << " cells done; `winnow study report " << study.dir << "` tabulates them"
              << std::endl;
    return 0;
  }
  std::cout << "winnow study: job array " << job << " ended (sbatch: " << describe_status(status)
            << "); " << unfinished.size() << " cell(s) without summary.json:";
  for (const auto& name : unfinished) std::cout << " " << name;
  std::cout << "\n  their logs are in " << study.dir
            << "/CELL/train.log; run the same command again to retry them" << std::endl;
  return 1;
}

}  // namespace winnow::launch
