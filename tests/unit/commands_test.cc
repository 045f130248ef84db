// `podsteer list` and `reconcile` over records in a temp state dir, where their answer
// does not depend on a pod netns being there.

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "commands/inspect.h"
#include "commands/reconcile.h"
#include "state/lock.h"
#include "state/record.h"
#include "test_util.h"
#include "util/file_io.h"

namespace fs = std::filesystem;
using namespace podsteer;

namespace {

using test::TempDir;

state::AttachmentRecord recordIn(const std::string& network, const std::string& containerId, const std::string& netns) {
  state::AttachmentRecord rec;
  rec.network = network;
  rec.containerId = containerId;
  rec.ifname = "eth0";
  rec.netns = netns;
  rec.cniVersion = "1.0.0";
  rec.ips = {"10.1.0.5/24"};
  rec.config = {{"cniVersion", "1.0.0"}, {"name", network}, {"type", "podsteer"}, {"redirect", nlohmann::json::object()}};
  return rec;
}

void writeText(const fs::path& p, const std::string& text) {
  REQUIRE(writeFileAtomic(p, text, "write", Durability::kNone, 0644, ErrorCode::kIo).ok());
}

} // namespace

TEST_CASE("list where pod netns cannot be seen (the installer's container): unverified, not damaged (issue 18.10)") {
  TempDir node;
  const fs::path stateDir = node.root / "state";
  fs::create_directories(stateDir);
  state::AttachmentRecord rec = recordIn("k8s-pod-network", "0123456789ab", "/podsteer-test-no-such-dir/cni-1");
  REQUIRE(state::RecordStore(stateDir).write(rec).ok());
  auto out = runList(stateDir, /*json=*/true);
  auto rows = nlohmann::json::parse(out.out)["attachments"];
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["state"].get<std::string>().rfind("unverified: netns directory /podsteer-test-no-such-dir", 0) == 0);
  CHECK(rows[0]["verified"] == false);
  CHECK(rows[0]["intact"] == false);
  auto text = runList(stateDir, /*json=*/false).out;
  CHECK(text.find("unverified: ") != std::string::npos);
  CHECK(text.find("damaged") == std::string::npos);
  CHECK(rows[0]["stale"] == false); // cannot tell: never called stale
  // Where the netns directory exists, a missing netns is a stale attachment (a missed
  // DEL: `podsteer gc` collects it), and its differences are listed as before.
  fs::create_directories(node.root / "netns");
  rec.netns = (node.root / "netns" / "cni-1").string();
  REQUIRE(state::RecordStore(stateDir).write(rec).ok());
  rows = nlohmann::json::parse(runList(stateDir, true).out)["attachments"];
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["state"].get<std::string>().rfind("stale: pod netns", 0) == 0);
  CHECK(rows[0]["stale"] == true);
  CHECK(rows[0]["differences"][0].get<std::string>().rfind("pod netns", 0) == 0);
  CHECK(rows[0]["verified"] == true);
}

TEST_CASE("reconcile --conf with the ConfigMap's bare entry: name and cniVersion come from the records (issue 18.3)") {
  TempDir dir;
  const fs::path stateDir = dir.root / "state";
  fs::create_directories(stateDir);
  REQUIRE(state::RecordStore(stateDir).write(recordIn("k8s-pod-network", "0123456789ab", "/podsteer-test-no-such-dir/cni-1")).ok());
  const fs::path entry = dir.root / "entry.json";
  writeText(entry, nlohmann::json{{"type", "podsteer"}, {"stateDir", stateDir.string()}, {"redirect", {{"inboundPort", 15007}}}}.dump());
  ReconcileOptions opts;
  opts.confFile = entry;
  opts.dryRun = true;
  auto out = runReconcile(opts);
  CAPTURE(out.out);
  CHECK(out.out.find("invalid config") == std::string::npos);
  CHECK(out.out.find("1 attachments") != std::string::npos);
  // Records of two networks: which one is meant must be said.
  REQUIRE(state::RecordStore(stateDir).write(recordIn("other-net", "ba9876543210", "/podsteer-test-no-such-dir/cni-2")).ok());
  out = runReconcile(opts);
  CHECK(out.exitCode != 0);
  CHECK(out.out.find("--network") != std::string::npos);
  opts.network = "other-net";
  out = runReconcile(opts);
  CHECK(out.out.find("invalid config") == std::string::npos);
  CHECK(out.out.find("1 attachments") != std::string::npos);
}

// Two "nodes" on one host: another node's last command removes the empty node-wide root
// while this one creates its own directory under it. ensureDirectory must make the root
// again rather than fail with ENOENT (seen once as a failed ADD with two netns suites at
// once). A thread keeps creating and removing the root; creating a subdirectory must
// succeed every time.
TEST_CASE("ensureDirectory survives its parent being removed concurrently") {
  char tmpl[] = "/tmp/podsteer-ensure-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string root = std::string(tmpl) + "/root";
  std::atomic<bool> stop{false};
  std::thread remover([&] {
    while (!stop) {
      ::mkdir(root.c_str(), 0700);
      ::rmdir(root.c_str()); // only while empty, as NodeLock's destructor does
      std::this_thread::sleep_for(std::chrono::microseconds(20)); // many removals, not a livelock
    }
  });
  int failures = 0;
  std::string firstError;
  for (int i = 0; i < 3000; ++i) {
    const std::string sub = root + "/c" + std::to_string(i);
    auto s = podsteer::state::ensureDirectory(sub);
    if (!s) {
      if (failures++ == 0) firstError = s.error().msg;
      continue;
    }
    ::rmdir(sub.c_str());
  }
  stop = true;
  remover.join();
  ::rmdir(root.c_str());
  ::rmdir(tmpl);
  INFO(firstError);
  CHECK(failures == 0);
}
