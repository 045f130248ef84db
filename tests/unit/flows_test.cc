// The CNI command flows (ADD, DEL, CHECK, GC) through runCniCommand, against recording
// fakes of the pod and node kernels and of the node lock, with records and the node-wide
// state in a temp dir: the order of the steps, and every failure and rollback path.
// No root, no netlink.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "commands/commands.h"
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

// A second pod on the same node: its own netns, container and name (and address, unless
// `sameAddress`: an address another pod holds).
PodSpec secondPod(bool sameAddress = false) {
  PodSpec b;
  b.netns = "/run/netns/pod-2";
  b.identity = "4:1002";
  b.containerId = "c2";
  if (!sameAddress) b.ip = "10.244.1.6";
  b.name = "web-1";
  return b;
}

// One node: fakes for both kernels and the lock, node state and stateDir in a temp dir.
struct World : test::FakeNode {
  World() : FakeNode("podsteer-flows") {}

  // A pod whose namespace exists, with its address on eth0.
  FakePodKernel::Netns& addPod(const PodSpec& p) {
    auto& n = pod.add(p.netns, p.identity);
    n.addresses = {*parseCidr(p.ip + "/32")};
    return n;
  }

  // The conflist entry: capture (REDIRECT) and hairpin unless `extra` says otherwise.
  json conf(const PodSpec& p, json extra = json::object(), bool prev = true) const {
    json c = {{"cniVersion", "1.0.0"},      {"name", kNet},   {"type", "podsteer"}, {"stateDir", stateDir.string()},
              {"redirect", json::object()}, {"hairpin", true}};
    if (prev)
      c["prevResult"] = {{"cniVersion", "1.0.0"},
                         {"interfaces", {{{"name", "eth0"}, {"sandbox", p.netns}}}},
                         {"ips", {{{"address", p.ip + "/24"}, {"interface", 0}}}}};
    for (auto& [key, value] : extra.items()) {
      if (value.is_null()) c.erase(key);
      else c[key] = value;
    }
    return c;
  }

  CommandOutput run(const std::string& command, const PodSpec& p, const json& conf,
                    std::optional<std::string> netns = std::nullopt) {
    return test::runCni(k, command, p.containerId, netns.value_or(p.netns), p.name, conf.dump());
  }
  CommandOutput add(const PodSpec& p, json extra = json::object()) { return run("ADD", p, conf(p, std::move(extra))); }

  fs::path recordPath(const PodSpec& p) const { return stateDir / kNet / p.containerId / "eth0.json"; }
  bool hasRecord(const PodSpec& p) const { return fs::exists(recordPath(p)); }
  std::optional<state::AttachmentRecord> record(const PodSpec& p) const {
    auto r = state::RecordStore(stateDir.string()).read(kNet, p.containerId, "eth0");
    REQUIRE(r.ok());
    return *r;
  }
  bool hasTable(const PodSpec& p) { return pod.find(p.netns) && pod.find(p.netns)->table.has_value(); }
  std::optional<state::AttachmentKey> ownerOf(const PodSpec& p) const { return node.owners().ownerOf(p.ip); }
  bool hairpinElement(const PodSpec& p) const {
    for (const auto& [set, keys] : nodeKernel.sets)
      for (const auto& key : keys)
        if (set.find("hairpin") != std::string::npos && key.find(p.ip) != std::string::npos) return true;
    return false;
  }
};

int codeOf(const CommandOutput& out) {
  if (out.exitCode == 0) return 0;
  auto j = json::parse(out.out, nullptr, false);
  return j.is_object() && j.contains("code") ? j["code"].get<int>() : -1;
}

std::string msgOf(const CommandOutput& out) {
  auto j = json::parse(out.out, nullptr, false);
  return j.is_object() && j.contains("msg") ? j["msg"].get<std::string>() : out.out;
}

// The node holds nothing of the attachment: no record, no address claim, no node
// objects, no port block, and the lock was let go.
void expectNothingOf(World& w, const PodSpec& p) {
  CHECK_FALSE(w.hasRecord(p));
  CHECK_FALSE(w.ownerOf(p).has_value());
  CHECK_FALSE(w.hairpinElement(p));
  CHECK(w.node.users().activeResources().empty());
  CHECK(w.locker.held == 0);
}

const json kTproxy = {{"redirect", {{"interceptionMode", "TPROXY"}}}};

} // namespace

TEST_CASE(
    "ADD: a first ADD creates the pod's table before the node lock, then under it the record, the "
    "address claim and the node objects, and passes prevResult through") {
  World w;
  PodSpec p;
  w.addPod(p);
  const json conf = w.conf(p);
  auto out = w.run("ADD", p, conf);
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  json want = conf["prevResult"];
  CHECK(json::parse(out.out) == want);

  CHECK(w.hasTable(p));
  CHECK(w.pod.inOrder("create table", "lock"));
  CHECK(w.pod.indexOf("set table") < 0); // no lookup, no replace on the fresh path
  CHECK(w.pod.log.back() == "unlock");
  // ADD opened the table and address sockets in one visit; nothing else needed one.
  CHECK(w.pod.socketVisits == 1);

  auto rec = w.record(p);
  REQUIRE(rec);
  CHECK(rec->netnsIdentity == p.identity);
  CHECK(rec->ips == std::vector<std::string>{"10.244.1.5/24"});
  CHECK(w.ownerOf(p) == state::AttachmentKey{kNet, "c1", "eth0", w.stateDir.string()});
  CHECK(w.hairpinElement(p));
}

TEST_CASE("ADD repeated: the table is replaced under the lock, one record, the same result and node state") {
  World w;
  PodSpec p;
  w.addPod(p);
  auto first = w.add(p);
  REQUIRE(first.exitCode == 0);
  const std::string table = *w.pod.find(p.netns)->table;
  const auto sets = w.nodeKernel.sets;
  w.pod.log.clear();
  auto second = w.add(p);
  REQUIRE_MESSAGE(second.exitCode == 0, second.out);
  CHECK(second.out == first.out);
  // The record says it is a repeated ADD: no early create; one lookup and a replace
  // under the lock.
  CHECK(w.pod.indexOf("create table") < 0);
  CHECK(w.pod.inOrder("lock", "set table"));
  CHECK(*w.pod.find(p.netns)->table == table);
  CHECK(w.nodeKernel.sets == sets);
  CHECK(state::RecordStore(w.stateDir.string()).list(kNet).size() == 1);
}

TEST_CASE(
    "ADD over a table without a record (a killed ADD's): the optimistic creates meet it (EEXIST) and it "
    "is replaced under the lock") {
  World w;
  PodSpec p;
  w.addPod(p).table = "table inet podsteer {\n}\n";
  auto out = w.add(p);
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(w.pod.inOrder("create table", "lock"));
  CHECK(w.pod.inOrder("lock", "set table"));
  REQUIRE(w.hasTable(p));
  CHECK(w.pod.find(p.netns)->table->find("redirect to") != std::string::npos);
  CHECK(w.hasRecord(p));
}

TEST_CASE(
    "ADD: a refused pod-table commit fails the ADD with the kernel's error (100) before the lock; "
    "nothing is left") {
  World w;
  PodSpec p;
  w.addPod(p);
  w.pod.failOn = "create table";
  auto out = w.add(p);
  CHECK(codeOf(out) == 100);
  CHECK(msgOf(out).find("create table") != std::string::npos);
  CHECK_FALSE(w.hasTable(p));
  CHECK(w.pod.indexOf("lock") < 0);
  CHECK(w.nodeKernel.log.empty());
  expectNothingOf(w, p);
}

TEST_CASE(
    "ADD: a refused pod-table commit under the lock (TPROXY) removes the routes it added, the record, "
    "the claims and the node objects") {
  World w;
  PodSpec p;
  w.addPod(p);
  w.pod.failOn = "create table";
  auto out = w.add(p, kTproxy);
  CHECK(codeOf(out) == 100);
  // TPROXY's routes go in before the table, under the lock; the rollback takes them out.
  CHECK(w.pod.inOrder("lock", "add route"));
  CHECK(w.pod.inOrder("add route", "create table"));
  CHECK(w.pod.logged("delete route"));
  CHECK(w.pod.find(p.netns)->routes.empty());
  CHECK_FALSE(w.hasTable(p));
  CHECK(w.nodeKernel.clean());
  expectNothingOf(w, p);
}

TEST_CASE(
    "ADD: a refused node commit after the pod table was programmed takes the table away again and "
    "leaves no record, claim or node object") {
  World w;
  PodSpec p;
  w.addPod(p);
  w.nodeKernel.failAt = 1; // the host table's first transaction
  auto out = w.add(p);
  CHECK(codeOf(out) == 100);
  CHECK(msgOf(out).find("(fake)") != std::string::npos);
  CHECK(w.pod.inOrder("create table", "delete table"));
  CHECK_FALSE(w.hasTable(p));
  CHECK(w.nodeKernel.clean());
  expectNothingOf(w, p);
  CHECK(fs::is_empty(w.stateDir));
}

TEST_CASE(
    "ADD: a record that cannot be written fails the ADD and takes the early table away; no node "
    "objects, no claims, no port block") {
  World w;
  PodSpec p;
  w.addPod(p);
  // While this ADD waits for the lock, the network's record directory becomes a file.
  w.locker.onAcquire = [&] {
    fs::create_directories(w.stateDir);
    std::ofstream(w.stateDir / kNet) << "not a directory";
  };
  const json pool = {
      {"egressPortPool", {{"ports", "60000-60255"}, {"blockSize", 64}, {"destinations", {"198.51.100.0/24"}}}}};
  auto out = w.add(p, pool);
  CHECK(out.exitCode == 1);
  CHECK(codeOf(out) != 0);
  CHECK(w.pod.inOrder("create table", "lock"));
  CHECK(w.pod.inOrder("lock", "delete table"));
  CHECK_FALSE(w.hasTable(p));
  CHECK(w.nodeKernel.clean());
  CHECK(w.node.portBlocks().claims().empty()); // the block claimed under the lock is let go
  CHECK_FALSE(w.ownerOf(p).has_value());
  CHECK(w.locker.held == 0);
}

TEST_CASE("ADD: the node lock not granted (11) takes the early table away") {
  World w;
  PodSpec p;
  w.addPod(p);
  w.locker.refuse = makeError(ErrorCode::kTryAgain, "timed out waiting for the node lock");
  auto out = w.add(p);
  CHECK(codeOf(out) == 11);
  CHECK(w.pod.inOrder("create table", "delete table"));
  CHECK_FALSE(w.hasTable(p));
  expectNothingOf(w, p);
}

TEST_CASE(
    "ADD: a netns that is gone is error 4, and an address not on the pod's interface error 7; "
    "neither touches the kernel or the node") {
  World w;
  PodSpec p;
  auto out = w.add(p);
  CHECK(codeOf(out) == 4);
  CHECK(msgOf(out) == "CNI_NETNS: /run/netns/pod-1 does not exist");

  w.addPod(p).addresses = {*parseCidr("10.244.1.99/32")};
  out = w.add(p);
  CHECK(codeOf(out) == 7);
  CHECK(msgOf(out).rfind("prevResult.ips[0].address: 10.244.1.5 is not an address of eth0", 0) == 0);
  CHECK(w.pod.changes().empty());
  CHECK(w.pod.indexOf("lock") < 0);
  expectNothingOf(w, p);
}

TEST_CASE(
    "ADD: an address held by a pod that is gone is taken over (its attachment collected); one held by a "
    "live pod is refused with 7") {
  World w;
  PodSpec a, b = secondPod(/*sameAddress=*/true);
  w.addPod(a);
  REQUIRE(w.add(a).exitCode == 0);
  w.addPod(b);
  auto refused = w.add(b);
  CHECK(codeOf(refused) == 7);
  CHECK(msgOf(refused).find("whose pod is still running") != std::string::npos);
  CHECK(w.ownerOf(a)->containerId == "c1");
  CHECK_FALSE(w.hasRecord(b));
  CHECK_FALSE(w.hasTable(b)); // the early table went again

  w.pod.namespaces.erase(a.netns); // a's pod is gone, its DEL missed
  auto taken = w.add(b);
  REQUIRE_MESSAGE(taken.exitCode == 0, taken.out);
  CHECK(w.ownerOf(b)->containerId == "c2");
  CHECK_FALSE(w.hasRecord(a));
  CHECK(w.hasRecord(b));
}

TEST_CASE(
    "DEL: cleans the pod before the lock and the node under it; repeated DEL succeeds with nothing "
    "left to do") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p).exitCode == 0);
  w.pod.log.clear();
  auto out = w.run("DEL", p, w.conf(p));
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(out.out.empty());
  CHECK(w.pod.inOrder("delete table", "lock"));
  // The record did not change under the lock: the pod side is not cleaned twice.
  CHECK(w.pod.changes().size() == 1);
  CHECK_FALSE(w.hasTable(p));
  CHECK(w.nodeKernel.clean());
  expectNothingOf(w, p);

  out = w.run("DEL", p, w.conf(p));
  CHECK(out.exitCode == 0);
  expectNothingOf(w, p);
}

TEST_CASE("DEL with the netns gone (also without CNI_NETNS): the node side and the record are removed") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p, kTproxy).exitCode == 0);
  w.pod.namespaces.erase(p.netns);
  auto out = w.run("DEL", p, w.conf(p, kTproxy));
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(w.nodeKernel.clean());
  expectNothingOf(w, p);

  // Without CNI_NETNS the recorded netns is used, only while it is the recorded one.
  World v;
  v.addPod(p);
  REQUIRE(v.add(p).exitCode == 0);
  v.pod.find(p.netns)->identity = "4:9999"; // the path names another namespace now
  out = v.run("DEL", p, v.conf(p, json::object(), false), "");
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(v.hasTable(p)); // left untouched: not ours
  expectNothingOf(v, p);
}

TEST_CASE("DEL with an unreadable record fails (101) and removes nothing") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p).exitCode == 0);
  std::ofstream(w.recordPath(p), std::ios::trunc) << "{ not json";
  w.pod.log.clear();
  w.nodeKernel.log.clear();
  auto out = w.run("DEL", p, w.conf(p));
  CHECK(codeOf(out) == 101);
  CHECK(msgOf(out).find("the attachment's node state cannot be removed") != std::string::npos);
  CHECK(w.pod.changes().empty());
  CHECK(w.nodeKernel.changes().empty());
  CHECK(w.hasTable(p));
  CHECK(w.hasRecord(p));
  CHECK(w.ownerOf(p).has_value());
  CHECK(w.hairpinElement(p));
}

TEST_CASE("DEL: a refused table delete fails the DEL (100) before the lock; the record stays for the retry") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p).exitCode == 0);
  w.pod.log.clear();
  w.pod.failOn = "delete table";
  auto out = w.run("DEL", p, w.conf(p));
  CHECK(codeOf(out) == 100);
  CHECK(w.pod.indexOf("lock") < 0);
  CHECK(w.hasRecord(p));
  CHECK(w.hairpinElement(p));
  out = w.run("DEL", p, w.conf(p));
  CHECK(out.exitCode == 0);
  expectNothingOf(w, p);
}

TEST_CASE(
    "CHECK: passes after ADD; a missing table, a missing rule, a missing node element or route each "
    "fail it with 103 naming the difference") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p).exitCode == 0);
  w.pod.log.clear();
  auto out = w.run("CHECK", p, w.conf(p));
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(w.pod.changes().empty());

  SUBCASE("table missing") {
    w.pod.find(p.netns)->table.reset();
    out = w.run("CHECK", p, w.conf(p));
    CHECK(codeOf(out) == 103);
    CHECK(msgOf(out) == "CHECK: table inet podsteer: missing");
  }
  SUBCASE("a rule missing") {
    std::string& table = *w.pod.find(p.netns)->table;
    const size_t at = table.find("redirect to");
    REQUIRE(at != std::string::npos);
    table.erase(table.rfind('\n', at), table.find('\n', at) - table.rfind('\n', at));
    out = w.run("CHECK", p, w.conf(p));
    CHECK(codeOf(out) == 103);
    CHECK(msgOf(out).find("redirect to") != std::string::npos);
  }
  SUBCASE("a node element missing") {
    for (auto& [set, keys] : w.nodeKernel.sets) keys.clear();
    out = w.run("CHECK", p, w.conf(p));
    CHECK(codeOf(out) == 103);
    CHECK(msgOf(out).rfind("CHECK: ", 0) == 0);
  }
  SUBCASE("no record") {
    fs::remove(w.recordPath(p));
    out = w.run("CHECK", p, w.conf(p));
    CHECK(codeOf(out) == 3);
  }
}

TEST_CASE("CHECK (TPROXY): a pod route removed behind podsteer's back fails it with 103") {
  World w;
  PodSpec p;
  w.addPod(p);
  REQUIRE(w.add(p, kTproxy).exitCode == 0);
  REQUIRE(w.run("CHECK", p, w.conf(p, kTproxy)).exitCode == 0);
  REQUIRE(!w.pod.find(p.netns)->routes.empty());
  w.pod.find(p.netns)->routes.clear();
  auto out = w.run("CHECK", p, w.conf(p, kTproxy));
  CHECK(codeOf(out) == 103);
  CHECK(msgOf(out).find("ip rule add fwmark") != std::string::npos);
}

TEST_CASE(
    "GC keeps the attachments the runtime names and collects the others (their table, node objects, "
    "claims and record)") {
  World w;
  PodSpec a, b = secondPod();
  w.addPod(a);
  w.addPod(b);
  REQUIRE(w.add(a).exitCode == 0);
  REQUIRE(w.add(b).exitCode == 0);
  json gc = w.conf(a, {{"cniVersion", "1.1.0"}}, false);
  gc["cni.dev/valid-attachments"] = {{{"containerID", "c1"}, {"ifname", "eth0"}}};
  auto out = w.run("GC", a, gc);
  REQUIRE_MESSAGE(out.exitCode == 0, out.out);
  CHECK(w.hasRecord(a));
  CHECK(w.hasTable(a));
  CHECK(w.hairpinElement(a));
  CHECK(w.ownerOf(a).has_value());
  CHECK_FALSE(w.hasRecord(b));
  CHECK_FALSE(w.hasTable(b));
  CHECK_FALSE(w.hairpinElement(b));
  CHECK_FALSE(w.ownerOf(b).has_value());
  CHECK(w.locker.held == 0);
}

TEST_CASE(
    "GC: one attachment that cannot be collected is reported (its record stays), the others are "
    "collected") {
  World w;
  PodSpec a, b = secondPod();
  w.addPod(a);
  w.addPod(b);
  REQUIRE(w.add(a).exitCode == 0);
  REQUIRE(w.add(b).exitCode == 0);
  w.pod.failOn = "delete table /run/netns/pod-1";
  auto out = w.run("GC", a, w.conf(a, {{"cniVersion", "1.1.0"}}, false));
  CHECK(codeOf(out) == 100);
  CHECK(w.hasRecord(a));
  CHECK_FALSE(w.hasRecord(b));
  CHECK_FALSE(w.hasTable(b));
}
