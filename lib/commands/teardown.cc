#include "commands/teardown.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "commands/gc.h"
#include "state/lock.h"
#include "state/owners.h"
#include "state/record.h"

namespace podsteer {

Status removeNodeState(const std::string& stateDir, std::string& report) {
  struct stat st {};
  if (::lstat(stateDir.c_str(), &st) != 0 && errno == ENOENT) return Status::success();
  if (auto s = state::checkStateDir(stateDir); !s) return s;
  std::optional<Error> firstError;
  {
    auto lock = state::NodeLock::acquire(stateDir);
    if (!lock) return lock.error();
    state::RecordStore store(stateDir);
    std::vector<std::string> problems;
    for (const auto& rec : store.list("", &problems)) {
      const std::string key = rec.network + "/" + rec.containerId + "/" + rec.ifname;
      if (auto s = collectAttachment(stateDir, rec); !s) {
        report += "could not remove attachment " + key + ": " + s.error().msg + "\n";
        if (!firstError) firstError = s.error();
        continue;
      }
      report += "removed attachment " + key + " (pod " + rec.podNamespace + "/" + rec.podName + ")\n";
    }
    // An unreadable record still names node objects nobody else knows of: say so, and
    // leave it for the operator (removing it would leak them for good).
    for (const auto& p : problems) {
      report += "could not remove an attachment: " + p + "\n";
      if (!firstError)
        firstError = makeError(ErrorCode::kState, p, "its node state cannot be removed; fix or remove the record, "
                                                     "then run uninstall again");
    }
    state::removeTempsUnder(stateDir);
  }
  if (firstError) return *firstError;
  // Records took their container and network dirs with them: the stateDir goes too when
  // nothing else is in it (a later DEL through a cached config makes it again).
  if (::rmdir(stateDir.c_str()) == 0) report += "removed " + stateDir + "\n";
  return Status::success();
}

} // namespace podsteer
