#include <doctest/doctest.h>

#include <string>

#include "cni/env.h"

using namespace podsteer;

namespace {
std::string refusal(const std::string& ns, const std::string& name) {
  auto s = validatePodIdentity(ns, name);
  if (s) return "";
  CHECK(s.error().codeValue() == 4);
  return s.error().msg;
}
} // namespace

TEST_CASE("pod identity: the names Kubernetes and podman give are accepted") {
  CHECK(refusal("", "") == "");
  CHECK(refusal("default", "web-0") == "");
  CHECK(refusal("kube-system", "coredns-5d78c9869d-abcde") == "");
  CHECK(refusal(std::string(63, 'n'), std::string(253, 'p')) == "");
  CHECK(refusal("a", "web.example.com") == "");
  CHECK(refusal("", "My_Container.1") == ""); // podman passes container names
}

TEST_CASE("pod identity: anything else is error 4 naming the variable") {
  CHECK(refusal(std::string(64, 'n'), "p").rfind("K8S_POD_NAMESPACE: longer than 63", 0) == 0);
  CHECK(refusal("n", std::string(254, 'p')).rfind("K8S_POD_NAME: longer than 253", 0) == 0);
  for (const char* ns : {"Default", "-team", "team-", "te_am", "te.am", "te am", "a\nb", "\x1b[31m"})
    CHECK(refusal(ns, "p").rfind("K8S_POD_NAMESPACE:", 0) == 0);
  for (const char* name : {".web", "-web", "_web", "we b", "web\n", "web\x1b[2J", "w/eb", "w\xc3\xa9"})
    CHECK(refusal("default", name).rfind("K8S_POD_NAME:", 0) == 0);
}
