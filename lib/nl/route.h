#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "plan/capture.h"
#include "plan/host.h"

struct nl_sock;

namespace podsteer::nl {

// ip rules and routes through rtnetlink (libnl-route-3). Every object podsteer creates
// carries its protocol number (plan::kRouteProtocol); deletes name that protocol, so a
// foreign rule or route is never removed, even one that is otherwise identical.
class RouteSocket {
public:
  static Result<RouteSocket> open(); // in the current netns
  RouteSocket(RouteSocket&&) noexcept;
  RouteSocket& operator=(RouteSocket&&) noexcept;
  ~RouteSocket();

  Status addRule(const plan::IpRule& rule);    // present already: fine
  Status deleteRule(const plan::IpRule& rule); // absent already: fine
  Result<bool> hasRule(const plan::IpRule& rule);
  Status addRoute(const plan::IpRoute& route); // ours present already: fine; a foreign one: error
  Status deleteRoute(const plan::IpRoute& route);
  Result<bool> hasRoute(const plan::IpRoute& route);

  // TPROXY's pod routing (a socket opened in the pod netns): its fwmark rule and its
  // `local default dev lo` route. Present already: fine; absent on delete: fine.
  Status addPodRoute(const plan::PodRoute& route);
  Status deletePodRoute(const plan::PodRoute& route);
  // What of `route` is missing, one line each ("ip rule ...: missing"); empty: all there.
  Result<std::vector<std::string>> checkPodRoute(const plan::PodRoute& route);

  // An address on lo (::6/128, the source of the proxy's IPv6 inbound passthrough, which
  // istio-cni puts there). addLoAddress: true when this call added it, false when it was
  // there already (then it is not podsteer's).
  Result<bool> addLoAddress(const Cidr& address);
  Status deleteLoAddress(const Cidr& address); // absent already: fine
  Result<bool> hasLoAddress(const Cidr& address);

  // The addresses on interface `ifname` in the socket's namespace (each a full-length
  // prefix: 10.0.0.5/32); nullopt when the namespace has no such interface. What ADD and
  // CHECK hold prevResult's addresses against. The interface's index by ioctl
  // (SIOCGIFINDEX on this socket: its namespace's name hash; RTM_GETLINK would have the
  // kernel build the whole link message), then one kernel-filtered dump of its addresses,
  // parsed as it comes: a link cache would dump every link with its statistics.
  Result<std::optional<std::vector<Cidr>>> interfaceAddresses(const std::string& ifname);

private:
  explicit RouteSocket(nl_sock* s) : sock_(s) {}
  // NETLINK_GET_STRICT_CHK on or off. On, the kernel filters an address dump by interface
  // itself; off is what libnl's cache dumps need (their requests carry the short header
  // strict checking refuses). Changed only when a call needs the other setting.
  void strictChecking(bool on);
  nl_sock* sock_ = nullptr;
  bool strict_ = false;
};

} // namespace podsteer::nl
