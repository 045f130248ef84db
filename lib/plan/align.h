#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace podsteer::plan {

// One step of aligning two sequences: an element of `want` with no counterpart
// (missing) or an element of `have` with none (extra).
struct SequenceDiff {
  bool missing;
  size_t index; // into `want` when missing, into `have` otherwise
};

// Longest-common-subsequence alignment, so one inserted or deleted element is reported as
// exactly that, not as every element after it changing. Used for CHECK (desired vs the
// kernel's rules) and for reconcile's change sets (recorded vs new rules).
template <typename T>
std::vector<SequenceDiff> alignSequences(const std::vector<T>& want, const std::vector<T>& have) {
  const size_t n = want.size(), m = have.size();
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i][j] = want[i] == have[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::vector<SequenceDiff> out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && want[i] == have[j]) {
      ++i;
      ++j;
    } else if (j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      out.push_back({false, j++});
    } else {
      out.push_back({true, i++});
    }
  }
  return out;
}

} // namespace podsteer::plan
