// podsteer install / uninstall over temp dirs with the config files of common primaries.

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "install/conflist_text.h"
#include "install/install.h"
#include "util/file_io.h"

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

namespace {

struct stat statOf(const fs::path& p, bool follow = true) {
  struct stat st {};
  REQUIRE((follow ? ::stat(p.c_str(), &st) : ::lstat(p.c_str(), &st)) == 0);
  return st;
}

void setOwnerAndMode(const fs::path& p, uid_t uid, gid_t gid, mode_t mode) {
  REQUIRE(::chown(p.c_str(), uid, gid) == 0);
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

void checkOwnerAndMode(const fs::path& p, uid_t uid, gid_t gid, mode_t mode) {
  INFO(p.string());
  auto st = statOf(p);
  CHECK((st.st_mode & 07777) == mode);
  CHECK(st.st_uid == uid);
  CHECK(st.st_gid == gid);
}

// Names in a directory, dot files included (a leftover temporary would show here).
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A primary conflist that holds a credential, as Calico's does when it is given a token.
const char* kCalicoWithToken = R"({
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "calico", "datastore_type": "kubernetes", "ipam": {"type": "calico-ipam"},
     "policy": {"type": "k8s", "k8s_auth_token": "eyJhbGciOiJSUzI1NiJ9.secret"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
)";

} // namespace

TEST_CASE("install and uninstall keep the mode and owner of every file they rewrite (issue 12.5)") {
  // Not root's and not 0644: a rewrite that fell back to the defaults would show.
  const uid_t uid = 4321;
  const gid_t gid = 8765;
  SUBCASE("a 0600 conflist holding a token stays 0600 and keeps its owner") {
    TempNode node;
    const fs::path file = node.conf / "10-calico.conflist";
    TempNode::write(file, kCalicoWithToken);
    setOwnerAndMode(file, uid, gid, 0600);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    REQUIRE(pluginsOf(file).back()["type"] == "podsteer");
    checkOwnerAndMode(file, uid, gid, 0600);
    auto opts = node.options();
    opts.entry["hairpin"] = true; // a changed entry is a second rewrite
    REQUIRE(installOnce(opts, changed, report).ok());
    REQUIRE(changed);
    checkOwnerAndMode(file, uid, gid, 0600);
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(file) == kCalicoWithToken);
    checkOwnerAndMode(file, uid, gid, 0600);
  }
  SUBCASE("a converted .conf: the .conflist takes its mode and owner, and the restored .conf gets them back") {
    TempNode node;
    const fs::path conf = node.conf / "20-bridge.conf";
    TempNode::write(conf, kBridgeConf);
    setOwnerAndMode(conf, uid, gid, 0640);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    REQUIRE(fs::exists(node.conf / "20-bridge.conflist"));
    checkOwnerAndMode(node.conf / "20-bridge.conflist", uid, gid, 0640);
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(conf) == kBridgeConf);
    checkOwnerAndMode(conf, uid, gid, 0640);
  }
}

TEST_CASE("a symlinked conflist: its target is edited in place and the link stays a link (issue 12.5)") {
  SUBCASE("a link to a file elsewhere") {
    TempNode node;
    fs::create_directories(node.root / "calico");
    const fs::path target = node.root / "calico" / "cni.conflist";
    TempNode::write(target, kCalicoWithToken);
    setOwnerAndMode(target, 4321, 8765, 0600);
    const fs::path link = node.conf / "10-calico.conflist";
    fs::create_symlink("../calico/cni.conflist", link);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(fs::is_symlink(link));
    CHECK(fs::read_symlink(link) == "../calico/cni.conflist");
    CHECK(pluginsOf(target).back()["type"] == "podsteer");
    checkOwnerAndMode(target, 4321, 8765, 0600);
    CHECK(listing(node.conf) == std::vector<std::string>{"10-calico.conflist"});
    CHECK(listing(node.root / "calico") == std::vector<std::string>{"cni.conflist"});
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(fs::is_symlink(link));
    CHECK(TempNode::read(target) == kCalicoWithToken);
    checkOwnerAndMode(target, 4321, 8765, 0600);
  }
  SUBCASE("a ConfigMap-style chain (name -> ..data/name, ..data -> ..<timestamp>)") {
    TempNode node;
    fs::create_directories(node.conf / "..2024_05_01_10_00_00.123");
    TempNode::write(node.conf / "..2024_05_01_10_00_00.123" / "10-flannel.conflist", kFlannel);
    fs::create_directory_symlink("..2024_05_01_10_00_00.123", node.conf / "..data");
    fs::create_symlink("..data/10-flannel.conflist", node.conf / "10-flannel.conflist");
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(fs::is_symlink(node.conf / "10-flannel.conflist"));
    CHECK(fs::is_symlink(node.conf / "..data"));
    CHECK(pluginsOf(node.conf / "10-flannel.conflist").back()["type"] == "podsteer");
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(fs::is_symlink(node.conf / "10-flannel.conflist"));
    CHECK(TempNode::read(node.conf / "10-flannel.conflist") == kFlannel);
  }
  SUBCASE("a symlinked single-plugin .conf is refused: converting it would replace the link") {
    TempNode node;
    TempNode::write(node.root / "bridge.conf", kBridgeConf);
    fs::create_symlink(node.root / "bridge.conf", node.conf / "20-bridge.conf");
    bool changed = false;
    std::string report;
    auto s = installOnce(node.options(), changed, report);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().msg.find("20-bridge.conf") != std::string::npos);
    CHECK(s.error().msg.find("symlink") != std::string::npos);
    CHECK(fs::is_symlink(node.conf / "20-bridge.conf"));
    CHECK(TempNode::read(node.root / "bridge.conf") == kBridgeConf);
    CHECK(listing(node.conf) == std::vector<std::string>{"20-bridge.conf"});
  }
}

namespace {

// The fsync seam: records each call (directory or file, and what the watched config held
// at that moment), optionally failing directory syncs as a full disk or I/O error would.
struct SyncCall {
  ino_t inode = 0;
  bool directory = false;
  std::string watchedText;
};
std::vector<SyncCall> gSyncCalls;
fs::path gWatched;
bool gFailDirectorySync = false;

int recordingSync(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  gSyncCalls.push_back({st.st_ino, S_ISDIR(st.st_mode), TempNode::read(gWatched)});
  if (S_ISDIR(st.st_mode) && gFailDirectorySync) {
    errno = EIO;
    return -1;
  }
  return ::fsync(fd);
}

struct SyncSeam {
  explicit SyncSeam(const fs::path& watched) {
    gSyncCalls.clear();
    gWatched = watched;
    gFailDirectorySync = false;
    setSyncFunctionForTest(recordingSync);
  }
  ~SyncSeam() { setSyncFunctionForTest(nullptr); }
  // Was `dir` fsynced at a moment the watched file already held `text`?
  static bool dirSyncedAfter(const fs::path& dir, const std::string& text) {
    const ino_t ino = statOf(dir).st_ino;
    for (const auto& c : gSyncCalls)
      if (c.directory && c.inode == ino && c.watchedText == text) return true;
    return false;
  }
};

} // namespace

TEST_CASE("install and uninstall fsync the directory after each rename (issue 12.5)") {
  SUBCASE("conflist: the file before the rename, its directory after it") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    SyncSeam seam(file);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    const std::string installed = TempNode::read(file);
    REQUIRE(installed != kFlannel);
    // A file sync happened while the conflist still held the old text (the temporary),
    // and the conf dir was synced once the new text was in place.
    bool fileSyncedBefore = false;
    for (const auto& c : gSyncCalls) fileSyncedBefore |= !c.directory && c.watchedText == kFlannel;
    CHECK(fileSyncedBefore);
    CHECK(SyncSeam::dirSyncedAfter(node.conf, installed));
    CHECK(SyncSeam::dirSyncedAfter(node.bin, kFlannel)); // the binary goes in first, synced too
    gSyncCalls.clear();
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(SyncSeam::dirSyncedAfter(node.conf, kFlannel));
  }
  SUBCASE("a symlinked conflist: the target's directory is the one synced") {
    TempNode node;
    fs::create_directories(node.root / "flannel");
    const fs::path target = node.root / "flannel" / "cni.conflist";
    TempNode::write(target, kFlannel);
    fs::create_symlink(target, node.conf / "10-flannel.conflist");
    SyncSeam seam(target);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(SyncSeam::dirSyncedAfter(node.root / "flannel", TempNode::read(target)));
  }
  SUBCASE("a converted .conf: the directory is synced after the new file and after the unlink") {
    TempNode node;
    const fs::path conflist = node.conf / "20-bridge.conflist";
    TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
    SyncSeam seam(conflist);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    const ino_t confDir = statOf(node.conf).st_ino;
    int dirSyncs = 0;
    for (const auto& c : gSyncCalls) dirSyncs += c.directory && c.inode == confDir;
    CHECK(dirSyncs >= 2);
  }
  SUBCASE("a failed directory fsync is an error, not a silent success") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    SyncSeam seam(file);
    gFailDirectorySync = true;
    bool changed = false;
    std::string report;
    auto s = installOnce(node.options(), changed, report);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().msg.find("fsync directory") != std::string::npos);
  }
}

TEST_CASE("malformed files in the conf dir are skipped with a log line, never crash or hang (issue 18.5)") {
  struct Stray {
    const char* name;
    std::string text;
  };
  const std::vector<Stray> strays = {
      {"05-other.json", R"({"cniVersion": "1.0.0", "name": "other", "type": 5})"},
      {"05-typeobj.conflist", R"({"cniVersion": "1.0.0", "name": "o", "plugins": [{"type": {"name": "x"}}]})"},
      {"05-version.conf", R"({"cniVersion": 1, "name": "v", "type": "bridge"})"},
      {"05-bom.conf", "\xEF\xBB\xBF{ \"cniVersion\": \"0.4.0\", \"name\": \"bom\", \"type\": \"bridge\" }\n"},
      {"05-noplugins.conflist", R"({"cniVersion": "1.0.0", "name": "np", "type": "bridge"})"},
      {"05-pluginsnotlist.conflist", R"({"cniVersion": "1.0.0", "name": "p", "plugins": {"type": "x"}})"},
      {"05-name.conflist", R"({"cniVersion": "1.0.0", "name": ["n"], "plugins": [{"type": "bridge"}]})"},
      {"05-array.json", R"([{"type": "bridge"}])"},
      {"05-empty.conf", ""},
      {"05-scanner.conflist", R"({"plugins":[x{]})"}, // 16 bytes: looped the text scanner until bad_alloc
  };
  for (const auto& stray : strays) {
    INFO(stray.name);
    TempNode node;
    TempNode::write(node.conf / stray.name, stray.text);
    TempNode::write(node.conf / "10-flannel.conflist", kFlannel);
    CHECK(findPrimaryConfig(node.conf) == "10-flannel.conflist");
    bool changed = false;
    std::string report;
    CHECK(installOnce(node.options(), changed, report).ok());
    CHECK(pluginsOf(node.conf / "10-flannel.conflist").back()["type"] == "podsteer");
    CHECK(report.find(std::string("skipped ") + (node.conf / stray.name).string()) != std::string::npos);
    CHECK(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(node.conf / "10-flannel.conflist") == kFlannel);
    CHECK(TempNode::read(node.conf / stray.name) == stray.text); // never touched
  }
}

TEST_CASE("a .conf with a UTF-8 BOM is not converted (the runtime's decoder rejects it too) and not deleted (issue 18.5)") {
  TempNode node;
  const std::string bom = std::string("\xEF\xBB\xBF") + kBridgeConf;
  TempNode::write(node.conf / "20-bridge.conf", bom);
  auto opts = node.options();
  opts.waitForPrimary = std::chrono::seconds(0);
  bool changed = false;
  std::string report;
  auto s = installOnce(opts, changed, report);
  CHECK_FALSE(s.ok()); // no usable primary
  CHECK(TempNode::read(node.conf / "20-bridge.conf") == bom);
  CHECK_FALSE(fs::exists(node.conf / "20-bridge.conflist"));
}

TEST_CASE("the conflist text editors stop on any input: every prefix and every one-byte deletion (issue 18.5)") {
  const nlohmann::json entry = {{"type", "podsteer"}};
  auto checkOutput = [](const std::string& out) {
    INFO(out);
    CHECK_FALSE(nlohmann::json::parse(out, nullptr, false).is_discarded());
  };
  for (const std::string& original : {std::string(kFlannel), std::string(kCalico), std::string(kBridgeConf),
                                     std::string(R"({"plugins":[x{]})")}) {
    std::vector<std::string> inputs;
    for (size_t n = 0; n <= original.size(); ++n) inputs.push_back(original.substr(0, n));
    for (size_t k = 0; k < original.size(); ++k) inputs.push_back(original.substr(0, k) + original.substr(k + 1));
    for (const auto& text : inputs) {
      // Whatever an editor returns is valid JSON; on anything it cannot edit it says so.
      if (auto w = withEntry(text, entry); w.ok() && w->has_value()) checkOutput(**w);
      if (auto w = withoutEntry(text); w.ok() && w->has_value()) checkOutput(**w);
      (void)findEntry(text);
      if (auto c = confToConflist(text, "x.conf", entry); c.ok()) {
        checkOutput(*c);
        auto back = conflistToConf(*c, "x.conflist");
        CHECK((back.has_value() && back->text == text && back->fileName == "x.conf"));
      }
      if (auto r = conflistToConf(text, "x.conflist")) checkOutput(r->text);
    }
  }
}

TEST_CASE("a FIFO or a directory named like a config is skipped, not opened for a blocking read (issue 18.5)") {
  TempNode node;
  REQUIRE(::mkfifo((node.conf / "05-fifo.conf").c_str(), 0600) == 0);
  fs::create_directories(node.conf / "06-dir.conflist");
  TempNode::write(node.conf / "10-flannel.conflist", kFlannel);
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(node.options(), changed, report).ok());
  CHECK(pluginsOf(node.conf / "10-flannel.conflist").back()["type"] == "podsteer");
  CHECK(report.find("skipped " + (node.conf / "05-fifo.conf").string()) != std::string::npos);
  CHECK(report.find("skipped " + (node.conf / "06-dir.conflist").string()) != std::string::npos);
  REQUIRE(uninstall(node.bin, node.conf, report).ok());
  CHECK(TempNode::read(node.conf / "10-flannel.conflist") == kFlannel);
}

namespace {

// A one-plugin Calico conflist: with podsteer appended it has the two plugins a converted
// .conf has, so only the bookkeeping tells them apart.
const char* kCalicoOnly = R"({
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "calico", "datastore_type": "kubernetes", "ipam": {"type": "calico-ipam"}}
  ]
}
)";

// Bookkeeping as install writes it when it converts 10-flannel.conf, copied from another node.
const nlohmann::json kForeignBookkeeping = {{"convertedFrom", "10-flannel.conf"}, {"prefix", ""}, {"suffix", "\n"}};

} // namespace

TEST_CASE("uninstall never trusts install bookkeeping it did not write (issue 18.4)") {
  SUBCASE("an operator entry carrying podsteerInstall: stripped on install, nothing deleted on uninstall") {
    TempNode node;
    const fs::path calico = node.conf / "10-calico.conflist";
    TempNode::write(calico, kCalicoOnly);
    auto opts = node.options();
    opts.entry[kInstallKey] = kForeignBookkeeping;
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(opts, changed, report).ok());
    auto plugins = pluginsOf(calico);
    REQUIRE(plugins.back()["type"] == "podsteer");
    CHECK_FALSE(plugins.back().contains(kInstallKey));
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(calico) == kCalicoOnly);
    CHECK_FALSE(fs::exists(node.conf / "10-flannel.conf"));
  }
  SUBCASE("bookkeeping already in a conflist whose name does not match: only our entry is removed") {
    // As an older podsteer left it after installing such an operator entry.
    TempNode node;
    const fs::path calico = node.conf / "10-calico.conflist";
    nlohmann::json ours = {{"type", "podsteer"}, {kInstallKey, kForeignBookkeeping}};
    auto withOurs = withEntry(kCalicoOnly, ours);
    REQUIRE(withOurs.ok());
    TempNode::write(calico, **withOurs);
    std::string report;
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(calico) == kCalicoOnly);
    CHECK_FALSE(fs::exists(node.conf / "10-flannel.conf"));
  }
  SUBCASE("a converted .conf that exists again is not overwritten") {
    TempNode node;
    TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    REQUIRE(fs::exists(node.conf / "20-bridge.conflist"));
    // The primary wrote its .conf again (a new subnet) while our conflist was in place.
    const std::string fresh = std::string(kBridgeConf).replace(std::string(kBridgeConf).find("10.1.0.0"), 8, "10.2.0.0");
    TempNode::write(node.conf / "20-bridge.conf", fresh);
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(node.conf / "20-bridge.conf") == fresh);
    // Our conflist lost our entry (and nothing else): the runtime reads the .conf first.
    if (fs::exists(node.conf / "20-bridge.conflist"))
      CHECK(pluginsOf(node.conf / "20-bridge.conflist").back()["type"] == "bridge");
  }
  SUBCASE("a conversion never overwrites a .conflist of the same base name that is not its own") {
    TempNode node;
    TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
    TempNode::write(node.conf / "20-bridge.conflist", kFlannel);
    bool changed = false;
    std::string report;
    auto s = installOnce(node.options(), changed, report);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().msg.find("20-bridge.conflist") != std::string::npos);
    CHECK(TempNode::read(node.conf / "20-bridge.conflist") == kFlannel);
    CHECK(TempNode::read(node.conf / "20-bridge.conf") == kBridgeConf);
  }
  SUBCASE("install keeps its own bookkeeping when the entry changes, and the .conf still comes back") {
    TempNode node;
    TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    auto opts = node.options();
    opts.entry["hairpin"] = true;
    opts.entry[kInstallKey] = kForeignBookkeeping; // an operator's copy must not replace ours
    REQUIRE(installOnce(opts, changed, report).ok());
    CHECK(pluginsOf(node.conf / "20-bridge.conflist").back()[kInstallKey]["convertedFrom"] == "20-bridge.conf");
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(TempNode::read(node.conf / "20-bridge.conf") == kBridgeConf);
    CHECK_FALSE(fs::exists(node.conf / "20-bridge.conflist"));
    CHECK_FALSE(fs::exists(node.conf / "10-flannel.conf"));
  }
}

namespace {

std::vector<std::string> typesOf(const fs::path& p) {
  std::vector<std::string> out;
  for (const auto& plugin : pluginsOf(p)) out.push_back(plugin["type"]);
  return out;
}

} // namespace

TEST_CASE("an entry before the primary, or a second entry, is moved after the primary (issue 18.7)") {
  using Types = std::vector<std::string>;
  SUBCASE("podsteer first: moved to the end; the other plugins keep their text and order") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    auto first = nlohmann::json::parse(kFlannel);
    first["plugins"].insert(first["plugins"].begin(), node.options().entry);
    TempNode::write(file, first.dump(2));
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(changed);
    CHECK(typesOf(file) == Types{"flannel", "portmap", "podsteer"});
    CHECK(report.find("moved") != std::string::npos);
    auto plugins = pluginsOf(file);
    CHECK(plugins[0] == nlohmann::json::parse(kFlannel)["plugins"][0]);
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK_FALSE(changed);
  }
  SUBCASE("two podsteer entries: one remains, after the primary; uninstall removes every one") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    auto twice = nlohmann::json::parse(kFlannel);
    twice["plugins"].insert(twice["plugins"].begin() + 1, nlohmann::json{{"type", "podsteer"}, {"logLevel", "debug"}});
    twice["plugins"].push_back(nlohmann::json{{"type", "podsteer"}});
    TempNode::write(file, twice.dump(2));
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(typesOf(file) == Types{"flannel", "portmap", "podsteer"});
    TempNode::write(file, twice.dump(2));
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK(typesOf(file) == Types{"flannel", "portmap"});
  }
  SUBCASE("an entry already after the primary stays where the operator put it") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    auto middle = nlohmann::json::parse(kFlannel);
    nlohmann::json entry = node.options().entry;
    entry["type"] = "podsteer";
    middle["plugins"].insert(middle["plugins"].begin() + 1, entry);
    const std::string text = middle.dump(2);
    TempNode::write(file, text);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    CHECK(TempNode::read(file) == text);
    CHECK(report.find(file.string()) == std::string::npos);
  }
}

namespace {

// kFlannel as the primary CNI rewrites it on a restart: a new MTU in its delegate.
std::string flannelWithMtu(int mtu) {
  auto j = nlohmann::json::parse(kFlannel);
  j["plugins"][0]["delegate"]["mtu"] = mtu;
  return j.dump(2) + "\n";
}

} // namespace

TEST_CASE("a concurrent rewrite by the primary CNI is never lost: re-read before the rename, start over (issue 18.6)") {
  SUBCASE("install: the primary rewrites its conflist between podsteer's read and rename") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    auto opts = node.options();
    int calls = 0;
    opts.beforeCommit = [&](const std::string& path) {
      if (calls++ == 0) TempNode::write(path, flannelWithMtu(1400));
    };
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(opts, changed, report).ok());
    auto plugins = pluginsOf(file);
    CHECK(plugins[0]["delegate"]["mtu"] == 1400); // the primary's update survived
    CHECK(plugins.back()["type"] == "podsteer");  // and podsteer is in
    CHECK(calls == 2);
  }
  SUBCASE("install converting a .conf: the primary rewrites the .conf meanwhile") {
    TempNode node;
    TempNode::write(node.conf / "20-bridge.conf", kBridgeConf);
    const std::string fresh = std::string(kBridgeConf).replace(std::string(kBridgeConf).find("10.1.0.0"), 8, "10.2.0.0");
    auto opts = node.options();
    int calls = 0;
    opts.beforeCommit = [&](const std::string& path) {
      if (calls++ == 0) TempNode::write(path, fresh);
    };
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(opts, changed, report).ok());
    CHECK_FALSE(fs::exists(node.conf / "20-bridge.conf"));
    auto plugins = pluginsOf(node.conf / "20-bridge.conflist");
    CHECK(plugins[0]["ipam"]["subnet"] == "10.2.0.0/16");
    CHECK(plugins.back()["type"] == "podsteer");
    std::string r2;
    REQUIRE(uninstall(node.bin, node.conf, r2).ok());
    CHECK(TempNode::read(node.conf / "20-bridge.conf") == fresh);
  }
  SUBCASE("uninstall: the primary rewrites its conflist (without our entry) meanwhile") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    int calls = 0;
    REQUIRE(uninstall(node.bin, node.conf, report, [&](const std::string& path) {
              if (calls++ == 0) TempNode::write(path, flannelWithMtu(1400));
            }).ok());
    CHECK(TempNode::read(file) == flannelWithMtu(1400));
  }
  SUBCASE("a file that changes on every attempt: error 11, and the primary's last text stays") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    auto opts = node.options();
    int mtu = 1000;
    opts.beforeCommit = [&](const std::string& path) { TempNode::write(path, flannelWithMtu(++mtu)); };
    bool changed = false;
    std::string report;
    auto s = installOnce(opts, changed, report);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kTryAgain);
    CHECK(TempNode::read(file) == flannelWithMtu(mtu));
    CHECK(listing(node.conf) == std::vector<std::string>{"10-flannel.conflist"}); // no temporary left
  }
}

namespace {

int runInstall(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return runInstallCommand(static_cast<int>(args.size()), argv.data());
}

} // namespace

TEST_CASE("an entry the plugin would refuse is never written; the previous entry stays (issue 18.2)") {
  struct Typo {
    nlohmann::json patch;
    std::string field;
  };
  const std::vector<Typo> typos = {
      {{{"logFile", "relative.log"}}, "logFile"},
      {{{"redirect", {{"inboundPort", "abc"}}}}, "redirect.inboundPort"},
      {{{"routingDomains", {{{"name", "sbi"}, {"table", "main"}}}}}, "routingDomains[0]"},
      {{{"firewall", {{"ingress", {{{"protocol", "tcp"}, {"ports", {"80-"}}}}}}}}, "firewall.ingress[0]"},
  };
  for (const auto& typo : typos) {
    CAPTURE(typo.field);
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(node.options(), changed, report).ok());
    const std::string good = TempNode::read(file);
    auto opts = node.options();
    opts.entry.merge_patch(typo.patch);
    auto s = installOnce(opts, changed, report);
    CHECK_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kInvalidConfig);
    CHECK(s.error().msg.find(typo.field) != std::string::npos);
    CHECK(TempNode::read(file) == good); // the working entry is kept
    // On a fresh node nothing at all is written, not even the binary.
    TempNode fresh;
    TempNode::write(fresh.conf / "10-flannel.conflist", kFlannel);
    auto freshOpts = fresh.options();
    freshOpts.entry.merge_patch(typo.patch);
    CHECK_FALSE(installOnce(freshOpts, changed, report).ok());
    CHECK_FALSE(fs::exists(fresh.bin / "podsteer"));
    CHECK(TempNode::read(fresh.conf / "10-flannel.conflist") == kFlannel);
  }
}

TEST_CASE("install --conf validates the entry: exit status, nothing written; uninstall ignores it (issue 18.2)") {
  SUBCASE("install --conf with a typo exits non-zero and writes nothing") {
    TempNode node;
    const fs::path file = node.conf / "10-flannel.conflist";
    TempNode::write(file, kFlannel);
    const fs::path entry = node.root / "entry.json";
    TempNode::write(entry, R"({"type": "podsteer", "logFile": "relative.log", "redirect": {}})");
    const std::vector<std::string> dirs = {"--cni-bin-dir", node.bin, "--cni-conf-dir", node.conf,
                                           "--binary",      node.binary, "--timeout", "1"};
    std::vector<std::string> args = {"podsteer", "install", "--conf", entry};
    args.insert(args.end(), dirs.begin(), dirs.end());
    CHECK(runInstall(args) != 0);
    CHECK(TempNode::read(file) == kFlannel);
    CHECK_FALSE(fs::exists(node.bin / "podsteer"));
    TempNode::write(entry, R"({"type": "podsteer", "logFile": "/var/log/podsteer.log", "redirect": {}})");
    CHECK(runInstall(args) == 0);
    CHECK(pluginsOf(file).back()["logFile"] == "/var/log/podsteer.log");
    // uninstall does not need a valid entry
    TempNode::write(entry, "{not json");
    CHECK(runInstall({"podsteer", "uninstall", "--conf", entry, "--cni-bin-dir", node.bin, "--cni-conf-dir", node.conf}) ==
          0);
    CHECK(TempNode::read(file) == kFlannel);
  }
  SUBCASE("the primary's own cniVersion is checked too: podsteer supports none below 0.3.0") {
    TempNode node;
    auto old = nlohmann::json::parse(kFlannel);
    old["cniVersion"] = "0.2.0";
    TempNode::write(node.conf / "10-flannel.conflist", old.dump());
    bool changed = false;
    std::string report;
    auto s = installOnce(node.options(), changed, report);
    CHECK_FALSE(s.ok());
    CHECK(s.error().msg.find("cniVersion") != std::string::npos);
    CHECK(TempNode::read(node.conf / "10-flannel.conflist") == old.dump());
  }
}

TEST_CASE("--watch: a --conf edit with a typo is logged once and the working entry stays current (issue 18.2)") {
  TempNode node;
  const fs::path path = node.root / "entry.json";
  TempNode::write(path, R"({"type": "podsteer", "redirect": {}})");
  EntryFile file(path);
  std::string log;
  REQUIRE(file.poll(log) == EntryFile::Change::kNew);
  const nlohmann::json working = *file.current();
  CHECK(file.poll(log) == EntryFile::Change::kNone);

  TempNode::write(path, R"({"type": "podsteer", "redirect": {"inboundPort": "abc"}})");
  CHECK(file.poll(log) == EntryFile::Change::kRejected);
  CHECK(log.find("redirect.inboundPort") != std::string::npos);
  CHECK(log.find("keeping the previous entry") != std::string::npos);
  CHECK(*file.current() == working);
  log.clear();
  CHECK(file.poll(log) == EntryFile::Change::kNone); // logged once per content, not every pass
  CHECK(log.empty());

  TempNode::write(path, R"({"type": "podsteer", "redirect": {})"); // invalid JSON: logged too
  CHECK(file.poll(log) == EntryFile::Change::kRejected);
  CHECK(log.find("not valid JSON") != std::string::npos);
  CHECK(*file.current() == working);

  // Bookkeeping in the file is dropped; a whole conflist is not an entry.
  TempNode::write(path, R"({"type": "podsteer", "hairpin": true, "podsteerInstall": {"convertedFrom": "x.conf"}})");
  REQUIRE(file.poll(log) == EntryFile::Change::kNew);
  CHECK(file.current()->value("hairpin", false));
  CHECK_FALSE(file.current()->contains(kInstallKey));
  TempNode::write(path, kFlannel);
  CHECK(file.poll(log) == EntryFile::Change::kRejected);
  CHECK(log.find("plugins") != std::string::npos);
}

TEST_CASE("numeric installer flags are checked: a number in bounds, else exit 2 and nothing written (issue 18.10)") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  const std::vector<std::string> dirs = {"--cni-bin-dir", node.bin, "--cni-conf-dir", node.conf, "--binary", node.binary};
  const std::vector<std::vector<std::string>> bad = {
      {"--interval", "0"},   {"--interval", "abc"}, {"--interval", "99"},  {"--interval", "10x"},
      {"--interval", "-5"},  {"--interval", ""},    {"--interval", "99999999999999999999"},
      {"--timeout", "x"},    {"--timeout", "-1"},   {"--timeout", "1.5"},  {"--timeout", "100000"},
  };
  for (const auto& flag : bad) {
    CAPTURE(flag[0]);
    CAPTURE(flag[1]);
    std::vector<std::string> args = {"podsteer", "install"};
    args.insert(args.end(), dirs.begin(), dirs.end());
    args.insert(args.end(), flag.begin(), flag.end());
    CHECK(runInstall(args) == 2);
    CHECK(TempNode::read(file) == kFlannel);
    CHECK_FALSE(fs::exists(node.bin / "podsteer"));
  }
  std::vector<std::string> args = {"podsteer", "install", "--interval", "100", "--timeout", "0"};
  args.insert(args.end(), dirs.begin(), dirs.end());
  CHECK(runInstall(args) == 0);
  CHECK(fs::exists(node.bin / "podsteer"));
}

TEST_CASE("install --ready-check: ready only while the --conf entry is installed, valid and after the primary (issue 18.10)") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  const fs::path entry = node.root / "entry.json";
  TempNode::write(entry, R"({"type": "podsteer", "redirect": {}})");
  const std::vector<std::string> common = {"--conf",   entry,       "--cni-bin-dir", node.bin, "--cni-conf-dir", node.conf,
                                           "--binary", node.binary, "--timeout",     "0"};
  auto with = [&](std::vector<std::string> head) {
    head.insert(head.end(), common.begin(), common.end());
    return head;
  };
  const auto check = with({"podsteer", "install", "--ready-check"});
  CHECK(runInstall(check) == 1); // nothing installed yet
  REQUIRE(runInstall(with({"podsteer", "install"})) == 0);
  CHECK(runInstall(check) == 0);
  const std::string installed = TempNode::read(file);
  // The primary rewrote its file without our entry: not ready until install puts it back.
  TempNode::write(file, kFlannel);
  CHECK(runInstall(check) == 1);
  TempNode::write(file, installed);
  CHECK(runInstall(check) == 0);
  // A changed ConfigMap: not ready until the new entry is in; a typo: not ready at all.
  TempNode::write(entry, R"({"type": "podsteer", "redirect": {"inboundPort": 15007}})");
  CHECK(runInstall(check) == 1);
  REQUIRE(runInstall(with({"podsteer", "install"})) == 0);
  CHECK(runInstall(check) == 0);
  TempNode::write(entry, R"({"type": "podsteer", "redirect": {"inboundPort": "abc"}})");
  CHECK(runInstall(check) == 1);
  TempNode::write(entry, R"({"type": "podsteer", "redirect": {"inboundPort": 15007}})");
  CHECK(runInstall(check) == 0);
  // Another binary in the bin dir (an older release): not ready.
  TempNode::write(node.bin / "podsteer", "old");
  CHECK(runInstall(check) == 1);
  // The check writes nothing.
  CHECK(TempNode::read(node.bin / "podsteer") == "old");
  CHECK(runInstall(with({"podsteer", "install", "--ready-check", "--watch"})) == 2);
}

TEST_CASE("install --watch --reconcile: installs first, reconciles from the conflist, retries a failed reconcile (issue 18.3)") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  const fs::path entry = node.root / "entry.json";
  TempNode::write(entry, R"({"type": "podsteer", "redirect": {"inboundPort": 15006}})");
  struct Call {
    std::string path;
    nlohmann::json entry; // the podsteer entry the file held when reconcile ran
  };
  std::vector<Call> calls;
  std::atomic<bool> done{false};
  // Whatever happens, the watcher stops after 10 s (SIGTERM is what stops it).
  std::thread watchdog([&] {
    for (int i = 0; i < 100 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) std::raise(SIGTERM);
  });
  auto reconcile = [&](const std::string& path) {
    calls.push_back({path, findEntry(TempNode::read(path)).value_or(nlohmann::json())});
    if (calls.size() == 1) return 1; // a pod failed: must be tried again
    if (calls.size() == 2) {
      // The ConfigMap is edited: the next reconcile must see the new entry installed.
      TempNode::write(entry, R"({"type": "podsteer", "redirect": {"inboundPort": 15007}})");
      return 0;
    }
    done = true;
    std::raise(SIGTERM);
    return 0;
  };
  std::vector<std::string> args = {"podsteer",        "install",  "--watch",   "--reconcile", "--interval", "100",
                                   "--conf",          entry,      "--cni-bin-dir", node.bin,  "--cni-conf-dir", node.conf,
                                   "--binary",        node.binary, "--timeout", "1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  InstallHooks hooks;
  hooks.reconcile = reconcile;
  CHECK(runInstallCommand(static_cast<int>(args.size()), argv.data(), hooks) == 0);
  done = true;
  watchdog.join();
  REQUIRE(calls.size() == 3);
  for (const auto& c : calls) CHECK(c.path == file.string()); // the conflist: it has name and cniVersion
  CHECK(calls[0].entry["redirect"]["inboundPort"] == 15006);  // at start, after the install
  CHECK(calls[1].entry["redirect"]["inboundPort"] == 15006);  // the retry
  CHECK(calls[2].entry["redirect"]["inboundPort"] == 15007);  // the edit, installed before reconcile
  // The watcher stopped; a later install in this process is not told to stop.
  bool changed = false;
  std::string report;
  TempNode::write(file, kFlannel);
  CHECK(installOnce(node.options(), changed, report).ok());
  CHECK(changed);
}

TEST_CASE("uninstall takes the entry out first, then removes each stateDir's node state; the binary stays unless asked (issue 13.6)") {
  TempNode node;
  const fs::path file = node.conf / "10-flannel.conflist";
  TempNode::write(file, kFlannel);
  InstallOptions opts = node.options();
  opts.entry["stateDir"] = (node.root / "state").string();
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(opts, changed, report).ok());
  std::vector<std::string> removed;
  UninstallOptions u;
  u.binDir = node.bin;
  u.confDir = node.conf;
  u.removeNodeState = [&](const std::string& stateDir, std::string& r) -> Status {
    // The runtime must not find the entry any more when the attachments go.
    CHECK(TempNode::read(file) == kFlannel);
    removed.push_back(stateDir);
    r += "removed state of " + stateDir + "\n";
    return Status::success();
  };
  REQUIRE(uninstall(u, report).ok());
  CHECK(removed == std::vector<std::string>{(node.root / "state").string()});
  CHECK(TempNode::read(file) == kFlannel);
  // Kept for DELs through a runtime's cached config (CRI-O): they still run podsteer.
  CHECK(fs::exists(node.bin / "podsteer"));
  CHECK(report.find("kept " + (node.bin / "podsteer").string()) != std::string::npos);

  // Run again (nothing names a stateDir any more): the --state-dir ones, else the default.
  removed.clear();
  u.stateDirs = {(node.root / "other").string()};
  u.removeBinary = true;
  REQUIRE(uninstall(u, report).ok());
  CHECK(removed == std::vector<std::string>{(node.root / "other").string()});
  CHECK_FALSE(fs::exists(node.bin / "podsteer"));
  removed.clear();
  u.stateDirs.clear();
  REQUIRE(uninstall(u, report).ok());
  CHECK(removed == std::vector<std::string>{"/run/podsteer"});

  // A stateDir whose node state cannot be removed: uninstall fails naming it (the entry is
  // out already, so no new attachment appears meanwhile), and the binary stays.
  REQUIRE(installOnce(opts, changed, report).ok());
  u.removeBinary = true;
  u.removeNodeState = [](const std::string&, std::string&) -> Status {
    return makeError(ErrorCode::kState, "record x unreadable");
  };
  auto s = uninstall(u, report);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().msg.find((node.root / "state").string()) != std::string::npos);
  CHECK(TempNode::read(file) == kFlannel);
  CHECK(fs::exists(node.bin / "podsteer"));
}

namespace {

// The config a runtime loads: the first config file of the dir in lexical order.
std::string firstConfig(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names.empty() ? "" : TempNode::read(dir / names.front());
}

bool namesPodsteer(const std::string& text) { return text.find("\"podsteer\"") != std::string::npos; }

} // namespace

TEST_CASE("--owned-conflist: 00-podsteer.conflist is the primary's plugins and our entry; the primary is never touched (issue 18.12)") {
  for (const char* original : {kFlannel, kCalico, kBridgeConf}) {
    TempNode node;
    const bool conf = original == kBridgeConf;
    const fs::path primary = node.conf / (conf ? "10-bridge.conf" : "10-primary.conflist");
    const fs::path owned = node.conf / "00-podsteer.conflist";
    TempNode::write(primary, original);
    InstallOptions opts = node.options();
    opts.ownedConflist = true;
    bool changed = false;
    std::string report;
    REQUIRE(installOnce(opts, changed, report).ok());
    CHECK(changed);
    CHECK(TempNode::read(primary) == original);
    auto list = nlohmann::json::parse(TempNode::read(owned));
    const auto want = nlohmann::json::parse(original);
    CHECK(list["name"] == want["name"]);
    CHECK(list["cniVersion"] == want["cniVersion"]);
    auto plugins = list["plugins"];
    const size_t primaryPlugins = conf ? 1 : want["plugins"].size();
    REQUIRE(plugins.size() == primaryPlugins + 1);
    CHECK(plugins.back()["type"] == "podsteer");
    CHECK(plugins.front()["type"] == (conf ? want["type"] : want["plugins"][0]["type"]));
    CHECK(findPrimaryConfig(node.conf) == primary.filename().string());
    CHECK(checkInstalled(opts).ok());
    // Idempotent.
    REQUIRE(installOnce(opts, changed, report).ok());
    CHECK_FALSE(changed);
    // The primary rewrites its file (a new option): the runtime still loads a config with
    // podsteer, and the next pass brings the primary's change in.
    std::string rewritten = original;
    rewritten.insert(rewritten.find('{') + 1, "\"podsteerTestMarker\": 1,");
    TempNode::write(primary, rewritten);
    CHECK(namesPodsteer(firstConfig(node.conf)));
    CHECK_FALSE(checkInstalled(opts).ok());
    REQUIRE(installOnce(opts, changed, report).ok());
    CHECK(changed);
    CHECK(TempNode::read(owned).find("podsteerTestMarker") != std::string::npos);
    CHECK(checkInstalled(opts).ok());
    // uninstall: ours goes, the primary stays as the primary last wrote it.
    REQUIRE(uninstall(node.bin, node.conf, report).ok());
    CHECK_FALSE(fs::exists(owned));
    CHECK(TempNode::read(primary) == rewritten);
  }
}

TEST_CASE("--owned-conflist: switching modes either way never leaves the runtime a config without podsteer (issue 18.12)") {
  TempNode node;
  const fs::path primary = node.conf / "10-flannel.conflist";
  const fs::path owned = node.conf / "00-podsteer.conflist";
  TempNode::write(primary, kFlannel);
  InstallOptions edit = node.options();
  InstallOptions own = node.options();
  own.ownedConflist = true;
  bool changed = false;
  std::string report;
  REQUIRE(installOnce(edit, changed, report).ok());
  // Every write of the switch is checked: at each commit, the first config names podsteer.
  int commits = 0;
  auto hook = [&](const std::string&) {
    ++commits;
    CHECK(namesPodsteer(firstConfig(node.conf)));
  };
  own.beforeCommit = hook;
  edit.beforeCommit = hook;
  REQUIRE(installOnce(own, changed, report).ok());
  CHECK(namesPodsteer(firstConfig(node.conf)));
  CHECK(TempNode::read(primary) == kFlannel); // our entry left the primary
  CHECK(fs::exists(owned));
  REQUIRE(installOnce(edit, changed, report).ok());
  CHECK_FALSE(fs::exists(owned));
  CHECK(pluginsOf(primary).back()["type"] == "podsteer");
  CHECK(commits >= 2);
}

TEST_CASE("--owned-conflist: a 00-podsteer.conflist that is not ours is refused and left alone; a vanished primary takes ours along") {
  TempNode node;
  const fs::path primary = node.conf / "10-flannel.conflist";
  const fs::path owned = node.conf / "00-podsteer.conflist";
  TempNode::write(primary, kFlannel);
  TempNode::write(owned, kCalico);
  InstallOptions opts = node.options();
  opts.ownedConflist = true;
  opts.waitForPrimary = std::chrono::seconds(0);
  bool changed = false;
  std::string report;
  // The foreign file sorts first and is a valid primary itself: it is the primary then.
  CHECK(findPrimaryConfig(node.conf) == "00-podsteer.conflist");
  auto s = installOnce(opts, changed, report);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::kInvalidConfig);
  CHECK(TempNode::read(owned) == kCalico);
  fs::remove(owned);
  REQUIRE(installOnce(opts, changed, report).ok());
  REQUIRE(fs::exists(owned));
  // The primary CNI is removed from the node: ours must not keep its plugins in use.
  fs::remove(primary);
  CHECK_FALSE(installOnce(opts, changed, report).ok()); // no primary: error 11
  CHECK_FALSE(fs::exists(owned));
}
