#pragma once

// `podsteer doctor`: reads the node (over netlink; sysctls from /proc/sys) and the config,
// and reports what would make podsteer fail or misbehave on it before a pod finds out:
// foreign users of its mark bits, rule priorities and tables, a domain's route device,
// strict rp_filter, br_netfilter without hairpinMode, the CNI entry's place and binary,
// stale or damaged attachments, and a stateDir that is not tmpfs. `install` prints the
// same findings after it has installed.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands/commands.h"

namespace podsteer {

struct DoctorOptions {
  std::string confFile;   // a conflist or a bare podsteer entry; "" = the primary conflist's entry
  std::string stateDir;   // "" = the config's stateDir (or the default)
  std::string cniConfDir = "/etc/cni/net.d";
  std::string cniBinDir = "/opt/cni/bin";
  std::string binary;     // the binary bin_dir should hold ("" = this executable)
  bool json = false;
};

enum class Severity { kError, kWarning, kInfo };

// One finding. `id` is stable (documented in the README's troubleshooting table); the
// texts are for people.
struct Finding {
  Severity severity = Severity::kInfo;
  std::string id;
  std::string subject; // what it is about: a device, a table, a file, an attachment
  std::string problem; // what was found
  std::string breaks;  // what goes wrong because of it
  std::string fix;     // what to do
};

struct DoctorReport {
  std::string config;   // where the podsteer entry came from ("" when none was found)
  std::string stateDir;
  std::vector<Finding> findings;
  bool hasError() const;
};

DoctorReport runDoctorChecks(const DoctorOptions& opts);

// Text for people: one block per finding and a summary line.
std::string doctorText(const DoctorReport& report, const std::string& linePrefix = "");
// The stable JSON form (README: "podsteer doctor --json").
nlohmann::json doctorJson(const DoctorReport& report);

// `podsteer doctor [--conf FILE] [--state-dir DIR] [--cni-conf-dir DIR] [--cni-bin-dir DIR]
// [--json]`: exit 1 when any finding is an error, 2 on a bad argument, else 0.
int runDoctorCommand(int argc, char** argv);

} // namespace podsteer
