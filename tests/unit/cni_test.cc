// The CNI protocol layer: versions, error objects, result pass-through, environment.

#include <doctest/doctest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni/env.h"
#include "cni/error.h"
#include "cni/result.h"
#include "cni/version.h"
#include "test_util.h"
#include "util/strings.h"

using nlohmann::json;
using namespace podsteer;
using podsteer::test::codeOf;
using podsteer::test::startsWith;

namespace {

using Vars = std::map<std::string, std::string>;

EnvLookup lookupIn(const Vars& vars) {
  return [vars](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Vars fullEnv(const std::string& command) {
  return {{"CNI_COMMAND", command},       {"CNI_CONTAINERID", "c0ffee_1.a-b"}, {"CNI_NETNS", "/var/run/netns/p"},
          {"CNI_IFNAME", "eth0"},         {"CNI_PATH", "/opt/cni/bin"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"}};
}

Vars without(Vars v, const std::string& key) {
  v.erase(key);
  return v;
}

} // namespace

TEST_CASE("versions") {
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) CHECK_MESSAGE(isSupportedVersion(v), v);
  for (const char* v : {"", "0.1.0", "0.2.0", "1.2.0", "9.9.9", "1.0", "1.0.0 ", "v1.0.0"})
    CHECK_MESSAGE(!isSupportedVersion(v), v);

  CHECK(compareVersions("1.0.0", "1.0.0") == 0);
  CHECK(compareVersions("0.3.1", "0.4.0") == -1);
  CHECK(compareVersions("0.4.0", "0.3.1") == 1);
  CHECK(compareVersions("1.10.0", "1.9.0") == 1); // numeric, not lexical
  CHECK(compareVersions("1.0", "1.0.0") == 0);
  CHECK(compareVersions("x.y.z", "0.0.0") == 0);
}

TEST_CASE("checkCommandAllowed") {
  for (const char* cmd : {"ADD", "DEL", "VERSION"})
    for (const char* v : {"0.3.0", "0.3.1", "1.1.0"}) CHECK(checkCommandAllowed(cmd, v).ok());
  struct Row {
    const char* command;
    const char* version;
    bool allowed;
  };
  for (const Row& r : std::vector<Row>{{"CHECK", "0.3.0", false},
                                       {"CHECK", "0.3.1", false},
                                       {"CHECK", "0.4.0", true},
                                       {"CHECK", "1.0.0", true},
                                       {"GC", "0.4.0", false},
                                       {"GC", "1.0.0", false},
                                       {"GC", "1.1.0", true},
                                       {"STATUS", "1.0.0", false},
                                       {"STATUS", "1.1.0", true}}) {
    INFO(r.command << " at " << r.version);
    Status s = checkCommandAllowed(r.command, r.version);
    CHECK(s.ok() == r.allowed);
    if (!r.allowed) {
      CHECK(s.error().codeValue() == 1);
      CHECK(s.error().msg.find(r.command) != std::string::npos);
    }
  }
}

TEST_CASE("versionInfo") {
  json v = versionInfo("0.4.0");
  CHECK(v["cniVersion"] == "0.4.0");
  CHECK(v["supportedVersions"] == json({"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}));
  CHECK(v.size() == 2);
  // An unknown request version is answered in the latest one.
  CHECK(versionInfo("0.2.0")["cniVersion"] == "1.1.0");
  CHECK(versionInfo("")["cniVersion"] == "1.1.0");
}

TEST_CASE("errorToJson") {
  json e = errorToJson(makeError(ErrorCode::kInvalidConfig, "redirect.inboundPort: bad", "more"), "0.4.0");
  CHECK(e == json{{"cniVersion", "0.4.0"}, {"code", 7}, {"msg", "redirect.inboundPort: bad"}, {"details", "more"}});
  CHECK(e["code"].is_number_integer());
  json t = errorToJson(makeError(ErrorCode::kTryAgain, "pool exhausted"), "");
  CHECK(t["cniVersion"] == "1.1.0");
  CHECK(t["code"] == 11);
  CHECK(t["details"] == "");
  CHECK(errorToJson(makeError(ErrorCode::kNetlink, "x"), "1.0.0")["code"] == 100);
}

TEST_CASE("passThroughResult") {
  const json prev = {{"cniVersion", "1.0.0"},
                     {"interfaces", {{{"name", "eth0"}, {"mac", "aa:bb:cc:dd:ee:ff"}, {"sandbox", "/p"}}}},
                     {"ips", {{{"address", "10.0.0.5/24"}, {"gateway", "10.0.0.1"}, {"interface", 0}},
                              {{"address", "fd00::5/64"}, {"interface", 0}}}},
                     {"routes", {{{"dst", "0.0.0.0/0"}}}},
                     {"dns", {{"nameservers", {"10.96.0.10"}}}}};

  json legacy = passThroughResult(prev, "0.3.1");
  CHECK(legacy["cniVersion"] == "0.3.1");
  CHECK(legacy["ips"][0]["version"] == "4");
  CHECK(legacy["ips"][1]["version"] == "6");
  // Everything else untouched.
  json stripped = legacy;
  stripped["cniVersion"] = "1.0.0";
  for (auto& ip : stripped["ips"]) ip.erase("version");
  CHECK(stripped == prev);

  // 1.0.0 dropped ips[].version.
  json modern = passThroughResult(legacy, "1.0.0");
  CHECK(modern == prev);
  CHECK_FALSE(modern["ips"][0].contains("version"));
  json v11 = passThroughResult(legacy, "1.1.0");
  CHECK(v11["cniVersion"] == "1.1.0");
  CHECK_FALSE(v11["ips"][1].contains("version"));

  // 0.4.0 keeps an existing version as it is.
  json given = prev;
  given["ips"][0]["version"] = "4";
  CHECK(passThroughResult(given, "0.4.0")["ips"][0]["version"] == "4");

  // A result without ips still gets the requested version.
  CHECK(passThroughResult(json{{"cniVersion", "0.4.0"}}, "1.1.0") == json{{"cniVersion", "1.1.0"}});
}

TEST_CASE("readCniEnv: a complete ADD environment") {
  auto r = readCniEnv(lookupIn(fullEnv("ADD")));
  REQUIRE(r.ok());
  CHECK(r->command == "ADD");
  CHECK(r->containerId == "c0ffee_1.a-b");
  CHECK(r->netns == "/var/run/netns/p");
  CHECK(r->ifname == "eth0");
  CHECK(r->path == "/opt/cni/bin");
  CHECK(r->args == Vars{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns"}, {"K8S_POD_NAME", "p"}});
}

TEST_CASE("readCniEnv: missing variables per command are code 4 naming the variable") {
  struct Row {
    const char* command;
    const char* missing;
    bool required;
  };
  const std::vector<Row> rows = {
      {"ADD", "CNI_CONTAINERID", true},  {"ADD", "CNI_NETNS", true},   {"ADD", "CNI_IFNAME", true},
      {"ADD", "CNI_PATH", true},         {"CHECK", "CNI_CONTAINERID", true}, {"CHECK", "CNI_NETNS", true},
      {"CHECK", "CNI_IFNAME", true},     {"CHECK", "CNI_PATH", true},  {"DEL", "CNI_CONTAINERID", true},
      {"DEL", "CNI_NETNS", false},       {"DEL", "CNI_IFNAME", true},  {"DEL", "CNI_PATH", true},
      {"VERSION", "CNI_CONTAINERID", false}, {"VERSION", "CNI_NETNS", false}, {"VERSION", "CNI_IFNAME", false},
      {"VERSION", "CNI_PATH", false},    {"ADD", "CNI_ARGS", false},
  };
  for (const Row& row : rows) {
    INFO(row.command << " without " << row.missing);
    for (bool empty : {false, true}) { // unset, or set to ""
      Vars vars = without(fullEnv(row.command), row.missing);
      if (empty) vars[row.missing] = "";
      auto r = readCniEnv(lookupIn(vars));
      CHECK(r.ok() == !row.required);
      if (row.required && !r.ok()) {
        CHECK(r.error().codeValue() == 4);
        CHECK(startsWith(r.error().msg, std::string(row.missing) + ":"));
      }
    }
  }
  // DEL after the netns is gone (RemovePodSandbox).
  auto del = readCniEnv(lookupIn(without(fullEnv("DEL"), "CNI_NETNS")));
  REQUIRE(del.ok());
  CHECK(del->netns.empty());

  for (const Vars& vars : {without(fullEnv("ADD"), "CNI_COMMAND"), Vars{{"CNI_COMMAND", ""}},
                           Vars{{"CNI_COMMAND", "add"}}, Vars{{"CNI_COMMAND", "FROB"}}}) {
    auto r = readCniEnv(lookupIn(vars));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 4);
    CHECK(startsWith(r.error().msg, "CNI_COMMAND:"));
  }
  // The human tool mode does not need a command.
  CHECK(readCniEnv(lookupIn({}), /*requireCommand=*/false).ok());
}

TEST_CASE("readCniEnv: values that would become paths are validated") {
  struct Row {
    const char* var;
    std::string value;
  };
  const std::vector<Row> rows = {
      {"CNI_CONTAINERID", "../x"},
      {"CNI_CONTAINERID", "a/b"},
      {"CNI_CONTAINERID", std::string(257, 'a')},
      {"CNI_CONTAINERID", "-abc"},
      {"CNI_CONTAINERID", ".hidden"},
      {"CNI_CONTAINERID", "a b"},
      {"CNI_IFNAME", std::string(16, 'e')},
      {"CNI_IFNAME", "a/b"},
      {"CNI_IFNAME", "."},
      {"CNI_IFNAME", ".."},
      {"CNI_IFNAME", "eth:0"},
      {"CNI_IFNAME", "eth 0"},
      {"CNI_NETNS", "var/run/netns/p"},
  };
  for (const Row& row : rows) {
    INFO(row.var << "=" << row.value);
    Vars vars = fullEnv("ADD");
    vars[row.var] = row.value;
    auto r = readCniEnv(lookupIn(vars));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 4);
    CHECK(startsWith(r.error().msg, std::string(row.var) + ":"));
  }
  // The limits themselves are fine.
  Vars edge = fullEnv("ADD");
  edge["CNI_CONTAINERID"] = std::string(256, 'a');
  edge["CNI_IFNAME"] = std::string(15, 'e');
  CHECK(readCniEnv(lookupIn(edge)).ok());

  CHECK(codeOf(validateContainerId("")) == 4);
  CHECK(codeOf(validateContainerId("0123abcdef")) == 0);
  CHECK(codeOf(validateIfname("")) == 4);
  CHECK(codeOf(validateIfname("net1.100")) == 0);
}

TEST_CASE("parseCniArgs") {
  auto r = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
  REQUIRE(r.ok());
  CHECK(*r == Vars{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns"}, {"K8S_POD_NAME", "p"}});
  CHECK(parseCniArgs("")->empty());
  CHECK(*parseCniArgs("A=;B=x=y;") == Vars{{"A", ""}, {"B", "x=y"}}); // empty value; '=' in the value
  for (const char* bad : {"novalue", "A=1;novalue", "=v"}) {
    INFO(bad);
    auto b = parseCniArgs(bad);
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().codeValue() == 4);
    CHECK(startsWith(b.error().msg, "CNI_ARGS:"));
  }
  // Through readCniEnv too.
  Vars vars = fullEnv("ADD");
  vars["CNI_ARGS"] = "K8S_POD_NAME";
  CHECK(codeOf(readCniEnv(lookupIn(vars))) == 4);
}

// ---- error objects are always serialisable; messages quote values safely ----------------

TEST_CASE("utf8SequenceAt follows RFC 3629") {
  struct Row {
    std::string text;
    size_t len; // of the sequence at 0
  };
  const std::vector<Row> rows = {
      {"a", 1},           {"\xc3\xa9", 2},          {"\xe2\x82\xac", 3},     {"\xf0\x9f\x98\x80", 4},
      {"\xc3", 0},        {"\xe2\x82", 0},          {"\x80", 0},             {"\xc0\xaf", 0}, // overlong '/'
      {"\xe0\x80\xaf", 0}, {"\xed\xa0\x80", 0},      {"\xf4\x90\x80\x80", 0}, {"\xff", 0},
      {"\xf0\x9f\x98", 0}, {"\xef\xbf\xbf", 3},      {"\xf4\x8f\xbf\xbf", 4},
  };
  for (const auto& row : rows) {
    INFO(quoteForMessage(row.text));
    CHECK(utf8SequenceAt(row.text, 0) == row.len);
  }
  CHECK(utf8SequenceAt("", 0) == 0);
}

TEST_CASE("quoteForMessage: at most 64 bytes of whole characters, escapes, valid UTF-8") {
  CHECK(quoteForMessage("abc") == "\"abc\"");
  CHECK(quoteForMessage(std::string(64, 'a')) == "\"" + std::string(64, 'a') + "\"");
  CHECK(quoteForMessage(std::string(65, 'a')) == "\"" + std::string(64, 'a') + "...\"");
  // The value: 63 bytes, then a 2-byte character across the limit.
  CHECK(quoteForMessage(std::string(63, 'a') + "\xc3\xa9") == "\"" + std::string(63, 'a') + "...\"");
  CHECK(quoteForMessage(std::string(62, 'a') + "\xc3\xa9") == "\"" + std::string(62, 'a') + "\xc3\xa9\"");
  CHECK(quoteForMessage(std::string(61, 'a') + "\xf0\x9f\x98\x80") == "\"" + std::string(61, 'a') + "...\"");
  CHECK(quoteForMessage("a\nb\x7f") == "\"a\\x0ab\\x7f\"");
  CHECK(quoteForMessage("\xff\xfe ok \xc3") == "\"\\xff\\xfe ok \\xc3\"");
  for (size_t n = 0; n < 70; ++n) {
    for (const char* tail : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff", "\n"}) {
      const std::string q = quoteForMessage(std::string(n, 'x') + tail + "yy");
      INFO(n << " " << q);
      CHECK(isPrintableUtf8(q));
    }
  }
  CHECK(printable("line1\nline2\r\t\xff") == "line1\\x0aline2\\x0d\\x09\\xff");
  CHECK(isPrintableUtf8("caf\xc3\xa9"));
  CHECK_FALSE(isPrintableUtf8("a\nb"));
  CHECK_FALSE(isPrintableUtf8("\xc3"));
}

TEST_CASE("errorText: a message that is not valid UTF-8 is serialised, not thrown") {
  const Error e = makeError(ErrorCode::kInvalidConfig, "x: \"" + std::string(63, 'a') + "\xc3\"", "d\xff");
  // nlohmann's default serialiser throws on exactly this (type_error.316).
  CHECK_THROWS(errorToJson(e, "1.0.0").dump());
  std::string text;
  REQUIRE_NOTHROW(text = errorText(e, "1.0.0"));
  REQUIRE(text.size() > 1);
  CHECK(text.back() == '\n');
  CHECK(text.find('\n') == text.size() - 1);
  json back = json::parse(text);
  CHECK(back["code"] == 7);
  CHECK(back["cniVersion"] == "1.0.0");
  CHECK(back["msg"] == "x: \"" + std::string(63, 'a') + "\xef\xbf\xbd\""); // U+FFFD
  CHECK(back["details"] == "d\xef\xbf\xbd");
}

TEST_CASE("readCniEnv: values that end up in records and log lines are printable UTF-8") {
  struct Row {
    const char* var;
    std::string value;
    const char* names;
  };
  const std::vector<Row> rows = {
      {"CNI_NETNS", "/var/run/netns/\xff", "CNI_NETNS"},
      {"CNI_NETNS", "/var/run/netns/a\nb", "CNI_NETNS"},
      {"CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=\xc3", "K8S_POD_NAME"},
      {"CNI_ARGS", "K8S_POD_NAMESPACE=a\x01;K8S_POD_NAME=p", "K8S_POD_NAMESPACE"},
      {"CNI_ARGS", "K8S_POD_NAME=" + std::string(254, 'p'), "K8S_POD_NAME"},
      {"CNI_ARGS", std::string(63, 'a') + "\xc3\xa9", "CNI_ARGS"}, // not KEY=VALUE, cut in a character
      {"CNI_COMMAND", std::string(40, 'X') + "\xff", "CNI_COMMAND"},
  };
  for (const auto& row : rows) {
    INFO(row.var << "=" << quoteForMessage(row.value));
    Vars vars = fullEnv("ADD");
    vars[row.var] = row.value;
    auto r = readCniEnv(lookupIn(vars));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().codeValue() == 4);
    CHECK(r.error().msg.find(row.names) != std::string::npos);
    CHECK(isPrintableUtf8(r.error().msg));
  }
  // 253 bytes of a name is fine; DEL is not held to these rules (it must always clean up).
  Vars edge = fullEnv("ADD");
  edge["CNI_ARGS"] = "K8S_POD_NAME=" + std::string(253, 'p');
  CHECK(readCniEnv(lookupIn(edge)).ok());
  Vars del = fullEnv("DEL");
  del["CNI_NETNS"] = "/var/run/netns/\xff";
  del["CNI_ARGS"] = "K8S_POD_NAME=\xff";
  CHECK(readCniEnv(lookupIn(del)).ok());
}
