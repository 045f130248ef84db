#pragma once

// A recording fake of nl::PodKernel and of the node lock: pod namespaces held in memory
// by path (each with its `inet podsteer` table as rendered text, TPROXY's routes, ::6 on
// lo and its interface's addresses), every call logged in order in one log shared with
// the lock (so a test sees what happened before and under it), and any call made to
// fail by the start of its log line. Each mutating call is atomic like the kernel's
// transactions: a refused one changes nothing.

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "commands/kernels.h"
#include "nl/pod_kernel.h"
#include "plan/render.h"

namespace podsteer::test {

class FakePodKernel : public nl::PodKernel {
public:
  // One pod network namespace's kernel state.
  struct Netns {
    std::string identity;
    std::optional<std::string> table; // rendered; nullopt: no table
    std::vector<plan::PodRoute> routes;
    bool loAddress6 = false;
    std::string ifname = "eth0";
    std::vector<Cidr> addresses; // on `ifname`
    bool hasInterface = true;
  };
  std::map<std::string, Netns> namespaces; // by path; a path not here is gone
  std::set<std::string> invisibleDirectories;

  // Recording.
  std::vector<std::string> log;
  int socketVisits = 0; // namespace visits to open sockets (open() and lazy opens)
  // Refuse calls whose log line starts with `failOn` (the first `failTimes` of them;
  // -1: every one). An EEXIST-like refusal is modelled by the table itself.
  std::string failOn;
  int failTimes = 1;

  Netns& add(const std::string& path, const std::string& identity) {
    Netns& n = namespaces[path];
    n.identity = identity;
    return n;
  }
  Netns* find(const std::string& path) {
    auto it = namespaces.find(path);
    return it == namespaces.end() ? nullptr : &it->second;
  }
  // The log lines that change something (what a kernel would have been sent).
  std::vector<std::string> changes() const {
    std::vector<std::string> out;
    for (const auto& l : log)
      for (const char* verb : {"create table", "set table", "delete table", "add ", "delete "})
        if (l.rfind(verb, 0) == 0) {
          out.push_back(l);
          break;
        }
    return out;
  }
  bool logged(const std::string& prefix) const {
    return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  }
  // Whether lines starting with `first` and `then` were both logged, in that order.
  bool inOrder(const std::string& first, const std::string& then) const {
    const int a = indexOf(first), b = indexOf(then);
    return a >= 0 && b >= 0 && a < b;
  }
  // Index of the first log line starting with `prefix` (-1: none).
  int indexOf(const std::string& prefix) const {
    for (size_t i = 0; i < log.size(); ++i)
      if (log[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
    return -1;
  }

  Result<std::unique_ptr<nl::PodNetns>> open(const std::string& path, unsigned sockets) override {
    if (auto e = call("open " + path)) return *e;
    if (!find(path)) return std::unique_ptr<nl::PodNetns>();
    if (sockets != kNoSockets) ++socketVisits;
    return std::unique_ptr<nl::PodNetns>(std::make_unique<Handle>(*this, path, sockets));
  }
  bool directoryVisible(const std::string& path) override {
    return !invisibleDirectories.count(path.substr(0, path.rfind('/')));
  }

  // Logs the call; the injected failure names the operation, as the kernel's errors do.
  std::optional<Error> call(const std::string& what) {
    log.push_back(what);
    if (!failOn.empty() && failTimes != 0 && what.rfind(failOn, 0) == 0) {
      if (failTimes > 0) --failTimes;
      return makeError(ErrorCode::kNetlink, "netlink: " + what + ": Operation not permitted (fake)");
    }
    return std::nullopt;
  }

private:
  class Handle : public nl::PodNetns {
  public:
    Handle(FakePodKernel& k, std::string path, unsigned sockets)
        : k_(k), path_(std::move(path)), nft_(sockets & kTableSocket), rtnl_(sockets & kAddressSocket) {}

    std::string identity() override { return ns() ? ns()->identity : ""; }

    Result<Created> createTable(const plan::Table& t) override {
      if (auto e = op("create table")) return *e;
      if (ns()->table) return Created::kExists;
      ns()->table = plan::renderTable(t);
      operations_ = 1 + t.sets.size() + t.chains.size();
      return Created::kCreated;
    }
    Status setTable(const plan::Table* t) override {
      if (auto e = op(t ? "set table" : "set table (none)")) return *e;
      if (t) ns()->table = plan::renderTable(*t);
      else ns()->table.reset();
      operations_ = t ? 3 + t->sets.size() + t->chains.size() : 1;
      return Status::success();
    }
    Status deleteTable() override {
      if (auto e = op("delete table")) return *e;
      ns()->table.reset();
      return Status::success();
    }
    Result<bool> tableExists() override {
      if (auto e = op("table exists")) return *e;
      return ns()->table.has_value();
    }
    // One line per line of the desired listing the kernel's lacks.
    Result<std::vector<std::string>> diffTable(const plan::Table& t) override {
      if (auto e = op("diff table")) return *e;
      if (!ns()->table) return std::vector<std::string>{"table inet podsteer: missing"};
      std::vector<std::string> out;
      std::istringstream want(plan::renderTable(t));
      for (std::string line; std::getline(want, line);)
        if (ns()->table->find(line) == std::string::npos) out.push_back("missing `" + line + "`");
      return out;
    }
    size_t lastTableOperations() const override { return operations_; }

    Status addPodRoute(const plan::PodRoute& r) override {
      if (auto e = routeOp("add route " + r.ruleText())) return *e;
      auto& rs = ns()->routes;
      if (std::find(rs.begin(), rs.end(), r) == rs.end()) rs.push_back(r);
      return Status::success();
    }
    Status deletePodRoute(const plan::PodRoute& r) override {
      if (auto e = routeOp("delete route " + r.ruleText())) return *e;
      auto& rs = ns()->routes;
      rs.erase(std::remove(rs.begin(), rs.end(), r), rs.end());
      return Status::success();
    }
    Result<std::vector<std::string>> checkPodRoute(const plan::PodRoute& r) override {
      if (auto e = routeOp("check route " + r.ruleText())) return *e;
      const auto& rs = ns()->routes;
      if (std::find(rs.begin(), rs.end(), r) != rs.end()) return std::vector<std::string>{};
      return std::vector<std::string>{r.ruleText() + ": missing", r.routeText() + ": missing"};
    }
    Result<bool> hasLoAddress(const Cidr&) override {
      if (auto e = routeOp("has lo address")) return *e;
      return ns()->loAddress6;
    }
    Result<bool> addLoAddress(const Cidr&) override {
      if (auto e = routeOp("add lo address")) return *e;
      const bool added = !ns()->loAddress6;
      ns()->loAddress6 = true;
      return added;
    }
    Status deleteLoAddress(const Cidr&) override {
      if (auto e = routeOp("delete lo address")) return *e;
      ns()->loAddress6 = false;
      return Status::success();
    }
    Result<std::optional<std::vector<Cidr>>> interfaceAddresses(const std::string& ifname) override {
      if (!rtnl_) ++k_.socketVisits;
      rtnl_ = false; // let go once it answered, as the real one
      if (auto e = op("addresses " + ifname)) return *e;
      if (!ns()->hasInterface || ifname != ns()->ifname) return std::optional<std::vector<Cidr>>();
      return std::optional<std::vector<Cidr>>(ns()->addresses);
    }

  private:
    Netns* ns() { return k_.find(path_); }
    // A namespace removed while open keeps its sockets in the real kernel; here it is an
    // error, so a test sees the flow used it.
    std::optional<Error> op(const std::string& what) {
      if (!nft_ && what.find("addresses") == std::string::npos) {
        ++k_.socketVisits;
        nft_ = true;
      }
      if (auto e = k_.call(what + " " + path_)) return e;
      if (!ns()) return makeError(ErrorCode::kNetlink, "fake: netns " + path_ + " removed while open");
      return std::nullopt;
    }
    std::optional<Error> routeOp(const std::string& what) {
      if (!route_) {
        ++k_.socketVisits;
        route_ = true;
      }
      if (auto e = k_.call(what + " " + path_)) return e;
      if (!ns()) return makeError(ErrorCode::kNetlink, "fake: netns " + path_ + " removed while open");
      return std::nullopt;
    }

    FakePodKernel& k_;
    std::string path_;
    bool nft_ = false, rtnl_ = false, route_ = false;
    size_t operations_ = 0;
  };
};

// The node lock: "lock" and "unlock" in the pod kernel's log; `onAcquire` runs as the
// lock is taken (what another command did while this one waited).
class FakeLocker : public NodeLocker {
public:
  explicit FakeLocker(std::vector<std::string>& log) : log_(log) {}
  std::function<void()> onAcquire;
  std::optional<Error> refuse;
  int held = 0;

  Result<std::unique_ptr<Held>> acquire(const std::string&) override {
    log_.push_back("lock");
    if (refuse) return *refuse;
    if (onAcquire) onAcquire();
    ++held;
    return std::unique_ptr<Held>(std::make_unique<FakeHeld>(*this));
  }

private:
  class FakeHeld : public Held {
  public:
    explicit FakeHeld(FakeLocker& l) : l_(l) {}
    ~FakeHeld() override {
      --l_.held;
      l_.log_.push_back("unlock");
    }

  private:
    FakeLocker& l_;
  };
  std::vector<std::string>& log_;
};

} // namespace podsteer::test
