#pragma once
// One function per `lt2` sub-command; each parses its flags and returns the exit code.

namespace lt2::cli {
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_data(int argc, char** argv);
int cmd_eval_niah(int argc, char** argv);
int cmd_eval_mc(int argc, char** argv);
int cmd_eval_diag(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_curriculum(int argc, char** argv);
int cmd_data_tokenizer(int argc, char** argv);
}  // namespace lt2::cli
