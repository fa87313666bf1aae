// The options of a run, each declared once (launch/option_table.h): parsing, --help, validation
// and config.ini are generated from these lists. A new option is one line here (docs/training.md).
#pragma once

#include <vector>

#include "launch/config.h"
#include "launch/option_table.h"

namespace winnow::launch {

// The sections of RunConfig, in --help and config.ini order. The [compress] section holds
// compress.stages here and, in addition, the stage options below.
const std::vector<OptionSection<RunConfig>>& run_option_sections();

// The keys of one stage of token reduction: the [compress] section's method and every
// [stage.NAME] section take the same ones.
const OptionList<StageSection>& stage_options();

}  // namespace winnow::launch
