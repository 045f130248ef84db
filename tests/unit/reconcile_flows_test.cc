// `podsteer reconcile` (runReconcile) against the recording fakes of the pod and node
// kernels and of the node lock, with records and the node-wide state in a temp dir: the
// pods ADD programmed are reconciled onto a new config. No root, no netlink.

#include <doctest/doctest.h>

#include <filesystem>

#include "commands/commands.h"
#include "commands/reconcile.h"
#include "fake_node.h"
#include "state/record.h"
#include "util/file_io.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace podsteer;
using test::FakePodKernel;

namespace {

using test::kNet;
using test::PodSpec;

const PodSpec kPodA{"/run/netns/pod-1", "4:1001", "c1", "10.244.1.5", "web-0"};
const PodSpec kPodB{"/run/netns/pod-2", "4:1002", "c2", "10.244.1.6", "web-1"};

// The label reconcile prints for a pod.
std::string labelOf(const PodSpec& p) { return "default/" + p.name + " (" + p.containerId + "/eth0)"; }

// One node: fakes for both kernels and the lock, node state and stateDir in a temp dir.
struct World : test::FakeNode {
  World() : FakeNode("podsteer-reconcile") {}

  // The entry: REDIRECT capture to `inboundPort` (0: the default) with hairpin.
  json entry(int inboundPort = 0) const {
    json redirect = json::object();
    if (inboundPort) redirect["inboundPort"] = inboundPort;
    return {{"cniVersion", "1.0.0"},         {"name", kNet},         {"type", "podsteer"},
            {"stateDir", stateDir.string()}, {"redirect", redirect}, {"hairpin", true}};
  }

  // ADD of `p` under entry(inboundPort), its namespace created first.
  void add(const PodSpec& p, int inboundPort = 0) {
    pod.add(p.netns, p.identity).addresses = {*parseCidr(p.ip + "/32")};
    json c = entry(inboundPort);
    c["prevResult"] = {{"cniVersion", "1.0.0"},
                       {"interfaces", {{{"name", "eth0"}, {"sandbox", p.netns}}}},
                       {"ips", {{{"address", p.ip + "/24"}, {"interface", 0}}}}};
    auto out = test::runCni(k, "ADD", p.containerId, p.netns, p.name, c.dump());
    CAPTURE(out.out);
    REQUIRE(out.exitCode == 0);
  }

  // Reconciles onto entry(inboundPort); the JSON report, parsed. The logs are cleared
  // first, so they hold what reconcile did.
  json reconcile(int inboundPort, bool dryRun = false, bool repair = false, int* exitCode = nullptr) {
    const fs::path conf = tmp.root / "conf.json";
    REQUIRE(writeFileAtomic(conf.string(), entry(inboundPort).dump(), "conf").ok());
    pod.log.clear();
    nodeKernel.log.clear();
    ReconcileOptions opts;
    opts.confFile = conf.string();
    opts.dryRun = dryRun;
    opts.repair = repair;
    opts.json = true;
    auto out = runReconcile(opts, k);
    CAPTURE(out.out);
    if (exitCode) *exitCode = out.exitCode;
    auto j = json::parse(out.out, nullptr, false);
    REQUIRE(j.is_object());
    return j;
  }

  std::optional<state::AttachmentRecord> record(const PodSpec& p) const {
    auto r = state::RecordStore(stateDir.string()).read(kNet, p.containerId, "eth0");
    REQUIRE(r.ok());
    return *r;
  }
  std::string table(const PodSpec& p) { return pod.find(p.netns)->table.value_or(""); }
};

// The status reconcile reported for `p` ("" when not listed), and its error.
std::string statusOf(const json& report, const PodSpec& p, std::string* error = nullptr) {
  for (const auto& row : report["pods"])
    if (row["pod"] == labelOf(p)) {
      if (error) *error = row["error"].get<std::string>();
      return row["status"].get<std::string>();
    }
  return "";
}

// The change lines reconcile reported for `p`.
json changesOf(const json& report, const PodSpec& p) {
  for (const auto& row : report["pods"])
    if (row["pod"] == labelOf(p)) return row["changes"];
  return json::array();
}

bool openedNetns(const FakePodKernel& k, const PodSpec& p) { return k.logged("open " + p.netns); }

} // namespace

TEST_CASE("reconcile: a changed config re-programs only the pods whose plan changed") {
  World w;
  w.add(kPodA);        // the default inbound port
  w.add(kPodB, 15007); // already what the new config says
  const std::string tableA = w.table(kPodA), tableB = w.table(kPodB);
  const auto recB = w.record(kPodB);
  const json r = w.reconcile(15007);
  CAPTURE(r.dump());
  CHECK(statusOf(r, kPodA) == "changed");
  CHECK(statusOf(r, kPodB) == "unchanged");
  CHECK(r["changed"] == 1);
  CHECK(r["unchanged"] == 1);
  CHECK(r["failed"] == 0);
  // A's table now is B's (the same plan for both); B's namespace was not even entered.
  CHECK(w.table(kPodA) != tableA);
  CHECK(w.table(kPodA) == tableB);
  CHECK(w.pod.logged("set table " + kPodA.netns));
  CHECK_FALSE(openedNetns(w.pod, kPodB));
  CHECK(w.record(kPodA)->configDigest == recB->configDigest);
  CHECK(w.record(kPodB)->updatedAt == recB->updatedAt);
  CHECK(w.record(kPodA)->pendingHost.is_null());
}

TEST_CASE("reconcile: a no-op reconcile enters no netns, takes no lock and commits nothing") {
  World w;
  w.add(kPodA, 15007);
  w.add(kPodB, 15007);
  const auto recA = w.record(kPodA);
  const json r = w.reconcile(15007);
  CAPTURE(r.dump());
  CHECK(statusOf(r, kPodA) == "unchanged");
  CHECK(statusOf(r, kPodB) == "unchanged");
  CHECK(r["unchanged"] == 2);
  CHECK(w.pod.log.empty()); // no open, no lock
  CHECK(w.nodeKernel.changes().empty());
  CHECK(w.record(kPodA)->updatedAt == recA->updatedAt);
}

TEST_CASE("reconcile --dry-run: reports \"would change\" and changes neither kernel nor record") {
  World w;
  w.add(kPodA);
  const std::string table = w.table(kPodA);
  const auto rec = w.record(kPodA);
  const json r = w.reconcile(15007, /*dryRun=*/true);
  CAPTURE(r.dump());
  CHECK(r["dryRun"] == true);
  CHECK(statusOf(r, kPodA) == "would change");
  CHECK(r["changed"] == 1);
  CHECK_FALSE(changesOf(r, kPodA).empty());
  CHECK(w.pod.changes().empty());
  CHECK(w.nodeKernel.changes().empty());
  CHECK(w.table(kPodA) == table);
  CHECK(w.record(kPodA)->configDigest == rec->configDigest);
  CHECK(w.record(kPodA)->updatedAt == rec->updatedAt);
}

TEST_CASE(
    "reconcile: a pod whose netns is gone fails with \"gone; record left for DEL/GC\" and keeps its "
    "record; a record removed while reconcile waited for the lock is reported \"gone\"") {
  World w;
  w.add(kPodA);
  w.add(kPodB);
  const auto recA = w.record(kPodA);
  w.pod.namespaces.erase(kPodA.netns);
  // B's DEL (its record removed) runs while reconcile waits for its first lock: B was
  // listed, and is gone when reconcile comes to it (whichever pod it takes first).
  w.locker.onAcquire = [&] { fs::remove(w.stateDir / kNet / kPodB.containerId / "eth0.json"); };
  int rc = 0;
  const json r = w.reconcile(15007, false, false, &rc);
  CAPTURE(r.dump());
  std::string error;
  CHECK(statusOf(r, kPodA, &error) == "failed");
  CHECK(error.find("pod netns " + kPodA.netns + " is gone; record left for DEL/GC") != std::string::npos);
  CHECK(rc == 1);
  // The record is as ADD left it (the record-first write comes after the netns is opened).
  REQUIRE(w.record(kPodA));
  CHECK(w.record(kPodA)->configDigest == recA->configDigest);
  CHECK(w.record(kPodA)->pendingHost.is_null());
  CHECK(w.nodeKernel.changes().empty());
  // B: its record gone under the lock.
  bool goneB = false;
  for (const auto& row : r["pods"])
    if (row["pod"] == "c2/eth0") goneB = row["status"] == "gone";
  CHECK(goneB);
  CHECK(r["failed"] == 1);
  CHECK(r["unchanged"] == 1); // "gone" counts as unchanged
}

TEST_CASE(
    "reconcile: a refused pod commit is reported \"failed\", the pod's record restored, and the "
    "other pods still reconciled") {
  World w;
  w.add(kPodA);
  w.add(kPodB);
  const std::string tableA = w.table(kPodA);
  const auto recA = w.record(kPodA);
  w.pod.failOn = "set table " + kPodA.netns;
  int rc = 0;
  const json r = w.reconcile(15007, false, false, &rc);
  CAPTURE(r.dump());
  std::string error;
  CHECK(statusOf(r, kPodA, &error) == "failed");
  CHECK(error.find("Operation not permitted (fake)") != std::string::npos);
  CHECK(statusOf(r, kPodB) == "changed");
  CHECK(rc == 1);
  CHECK(r["failed"] == 1);
  CHECK(r["changed"] == 1);
  CHECK(w.table(kPodA) == tableA);
  CHECK(w.record(kPodA)->configDigest == recA->configDigest);
  CHECK(w.record(kPodB)->configDigest != recA->configDigest);
  CHECK(w.pod.logged("set table " + kPodB.netns));
  CHECK(w.locker.held == 0);
}

TEST_CASE("reconcile --repair: a damaged pod table is re-applied and the pod reported \"repaired\"") {
  World w;
  w.add(kPodA);
  w.add(kPodB);
  const std::string table = w.table(kPodA);
  // One rule deleted behind podsteer's back (its longest line: found nowhere else).
  std::string damaged, longest;
  for (size_t at = 0, end; at < table.size(); at = end + 1) {
    end = table.find('\n', at);
    if (end == std::string::npos) end = table.size();
    if (end - at > longest.size()) longest = table.substr(at, end - at);
  }
  damaged = table;
  damaged.erase(damaged.find(longest), longest.size() + 1);
  w.pod.find(kPodA.netns)->table = damaged;
  // Without --repair the kernel is not read: nothing to do.
  json r = w.reconcile(0);
  CHECK(statusOf(r, kPodA) == "unchanged");
  CHECK(w.pod.changes().empty());
  r = w.reconcile(0, false, /*repair=*/true);
  CAPTURE(r.dump());
  CHECK(statusOf(r, kPodA) == "repaired");
  CHECK(statusOf(r, kPodB) == "unchanged");
  CHECK(w.table(kPodA) == table);
  CHECK(w.pod.logged("set table " + kPodA.netns));
  CHECK_FALSE(w.pod.logged("set table " + kPodB.netns));
  // The one difference found is the one change reported ("repaired" is a pod whose only
  // change is the repair).
  const json changes = changesOf(r, kPodA);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0]["op"] == "!");
  CHECK(changes[0]["where"] == "repair");
}
