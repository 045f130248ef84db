#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "cni/error.h"
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

private:
  explicit RouteSocket(nl_sock* s) : sock_(s) {}
  nl_sock* sock_ = nullptr;
};

} // namespace podsteer::nl
