// podsteer install / uninstall over temp dirs with the config files of common primaries.

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "install/conflist_text.h"
#include "install/install.h"

namespace fs = std::filesystem;
using namespace podsteer;
using namespace podsteer::install;

namespace {

const char* kFlannel = R"({
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
)";

const char* kCalico = R"({
	"name": "k8s-pod-network",
	"cniVersion": "0.3.1",
	"plugins": [{"type": "calico", "log_level": "info", "datastore_type": "kubernetes",
		"ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"},
		"kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}},
		{"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
		{"type": "bandwidth", "capabilities": {"bandwidth": true}}]
})";

const char* kBridgeConf = "{ \"cniVersion\": \"0.4.0\", \"name\": \"br\", \"type\": \"bridge\", \"bridge\": \"cni0\",\n"
                          "  \"ipam\": {\"type\": \"host-local\", \"subnet\": \"10.1.0.0/16\"} }\n";

struct TempNode {
  fs::path root, bin, conf, binary;
  TempNode() {
    char tmpl[] = "/tmp/podsteer-install-XXXXXX";
    root = mkdtemp(tmpl);
    bin = root / "bin";
    conf = root / "net.d";
    fs::create_directories(bin);
    fs::create_directories(conf);
    binary = root / "podsteer-build";
    write(binary, "#!/bin/sh\necho fake podsteer\n");
  }
  ~TempNode() { fs::remove_all(root); }
  static void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  InstallOptions options() const {
    InstallOptions o;
    o.binDir = bin;
    o.confDir = conf;
    o.binary = binary;
    o.waitForPrimary = std::chrono::seconds(1);
    return o;
  }
};

nlohmann::json pluginsOf(const fs::path& p) { return nlohmann::json::parse(TempNode::read(p))["plugins"]; }

} // namespace

TEST_CASE("install appends to a conflist, is idempotent, and uninstall restores it byte for byte") {
  for (const char* original : {kFlannel, kCalico}) {
    TempNode node;
    const fs::path file = node.conf / "10-primary.conflist";
    TempNode::write(file, original);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(changed);
    auto plugins = pluginsOf(file);
    CHECK(plugins.back()["type"] == "podsteer");
    CHECK(plugins.back()["capabilities"]["io.kubernetes.cri.pod-annotations"] == true);
    CHECK(plugins.size() == nlohmann::json::parse(original)["plugins"].size() + 1);
    CHECK(fs::exists(node.bin / "podsteer"));
    CHECK((fs::status(node.bin / "podsteer").permissions() & fs::perms::owner_exec) != fs::perms::none);

    const std::string once = TempNode::read(file);
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK_FALSE(changed);
    CHECK(TempNode::read(file) == once);

    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(file) == original);
    CHECK_FALSE(fs::exists(node.bin / "podsteer"));
  }
}

TEST_CASE("a changed entry replaces ours in place; other plugins untouched") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(node.options(), changed, report).ok());
  auto opts = node.options();
  opts.entry["hairpin"] = true;
  REQUIRE(installOnce(opts, changed, report).ok());
  CHECK(changed);
  auto plugins = pluginsOf(file);
  CHECK(plugins.size() == 3);
  CHECK(plugins[2]["hairpin"] == true);
  CHECK(plugins[0] == nlohmann::json::parse(kFlannel)["plugins"][0]);
}

TEST_CASE("a single-plugin .conf becomes a .conflist and comes back exactly") {
  TempNode node;
  TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(node.options(), changed, report).ok());
  CHECK_FALSE(fs::exists(node.conf / "20-bridge.conf"));
  REQUIRE(fs::exists(node.conf / "20-bridge.conflist"));
  auto list = nlohmann::json::parse(TempNode::read(node.conf / "20-bridge.conflist"));
  CHECK(list["name"] == "br");
  CHECK(list["cniVersion"] == "0.4.0");
  CHECK(list["plugins"][0]["type"] == "bridge");
  CHECK(list["plugins"][1]["type"] == "podsteer");
  // Idempotent after the conversion too.
  REQUIRE(installOnce(node.options(), changed, report).ok());
  CHECK_FALSE(changed);
  REQUIRE(uninstall(node.bin, node.conf, report).ok());
  CHECK_FALSE(fs::exists(node.conf / "20-bridge.conflist"));
  CHECK(TempNode::read(node.conf / "20-bridge.conf") == kBridgeConf);
}

TEST_CASE("the primary is the first config in lexical order; a podsteer-only file is not a primary") {
  TempNode node;
  TempNode::write(node.conf / "05-podsteer.conflist",
                  R"({"cniVersion":"1.0.0","name":"x","plugins":[{"type":"podsteer"}]})");
  TempNode::write(node.conf / "10-calico.conflist", kCalico);
  TempNode::write(node.conf / "20-flannel.conflist", kFlannel);
  TempNode::write(node.conf / "README", "not a config");
  CHECK(findPrimaryConfig(node.conf) == "10-calico.conflist");
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(node.options(), changed, report).ok());
  CHECK(pluginsOf(node.conf / "10-calico.conflist").back()["type"] == "podsteer");
  CHECK(TempNode::read(node.conf / "20-flannel.conflist") == kFlannel);
}

TEST_CASE("a rewritten primary gets our entry back (what --watch does each interval)") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(node.options(), changed, report).ok());
  TempNode::write(file, kFlannel); // the primary CNI rewrote its file
  REQUIRE(installOnce(node.options(), changed, report).ok());
  CHECK(changed);
  CHECK(pluginsOf(file).back()["type"] == "podsteer");
}

TEST_CASE("no primary config: bounded wait, then error 11 naming the directory; nothing written") {
  TempNode node;
  auto opts = node.options();
  opts.waitForPrimary = std::chrono::seconds(0);
  bool changed = false;
  std::string report;
  auto s = installOnce(opts, changed, report);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kTryAgain);
  CHECK(s.error().msg.find(node.conf.string()) != std::string::npos);
  CHECK_FALSE(fs::exists(node.bin / "podsteer"));
}

TEST_CASE("conflist text edits keep everything but our entry") {
  const std::string empty = "{\"name\":\"n\",\"cniVersion\":\"1.0.0\",\"plugins\":[]}";
  auto added = withEntry(empty, {{"type", "podsteer"}});
  REQUIRE(added.ok());
  REQUIRE(added->has_value());
  auto removed = withoutEntry(**added);
  REQUIRE(removed.ok());
  REQUIRE(removed->has_value());
  CHECK(**removed == empty);
  // Strings with brackets and escaped quotes do not confuse the scanner.
  const std::string tricky = R"({"name":"a]\"[b","plugins":[{"type":"x","s":"}]\\"}],"z":1})";
  auto t = withEntry(tricky, {{"type", "podsteer"}});
  REQUIRE(t.ok());
  auto j = nlohmann::json::parse(**t);
  CHECK(j["plugins"].size() == 2);
  CHECK(j["z"] == 1);
  CHECK(**withoutEntry(**t) == tricky);
  CHECK_FALSE(withEntry("{\"plugins\": 3}", {{"type", "podsteer"}}).ok());
  CHECK_FALSE(withEntry("not json", {{"type", "podsteer"}}).ok());
}
