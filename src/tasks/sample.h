#pragma once
// The common training sample of every synthetic task.
//
//   tokens[i]  : the input token at position i
//   targets[i] : the token the model must output at position i, or -1 (no loss there).
//
// For the next-token tasks (MQAR, swaps, S-NIAH) targets[i] = tokens[i + 1] exactly where
// tokens[i + 1] is an answer token, so the loss falls only on the answers; elsewhere -1.
// The receptive-field probe is the one task whose target is not the next token (see
// receptive_field.h). -1 is the ignore index of ops::cross_entropy.
#include <cstdint>
#include <vector>

namespace lt2::tasks {

struct Sample {
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;
};

// An all-ignored sample of `n` tokens (tokens = 0, targets = -1).
Sample empty_sample(int64_t n);

// Marks tokens[pos] as an answer token: targets[pos - 1] = tokens[pos]. Needs pos >= 1.
void mark_answer(Sample& s, int64_t pos);

// The positions i with targets[i] >= 0, ascending.
std::vector<int64_t> loss_positions(const Sample& s);

// Number of loss positions i where predicted[i] == targets[i] (predicted: the model's argmax
// per position, same length as the sample). Accuracy = this / loss_positions(s).size().
int64_t count_correct(const Sample& s, const std::vector<int32_t>& predicted);

// Throws lt2::Error unless tokens and targets have the same length, every token is in
// [0, vocab) and every target is -1 or in [0, vocab). `what` names the task in the message.
void check_sample(const Sample& s, int64_t vocab, const char* what);

}  // namespace lt2::tasks
