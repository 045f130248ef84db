#include "commands/kernels.h"

namespace podsteer {

namespace {

class HeldNodeLock : public NodeLocker::Held {
public:
  explicit HeldNodeLock(state::NodeLock lock) : lock_(std::move(lock)) {}

private:
  state::NodeLock lock_;
};

} // namespace

Result<std::unique_ptr<NodeLocker::Held>> RealNodeLocker::acquire(const std::string& stateDir) {
  auto lock = state::NodeLock::acquire(stateDir);
  if (!lock) return lock.error();
  return std::unique_ptr<Held>(std::make_unique<HeldNodeLock>(std::move(*lock)));
}

} // namespace podsteer
