#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cni/error.h"
#include "nl/handles.h"
#include "config/cidr.h"

namespace podsteer::nl {

// A raw rtnetlink socket for the pod-side address check: two plain requests (the
// interface by name, then its addresses), where a link cache would dump every link
// with its statistics.
class RtnlSocket {
public:
  static Result<RtnlSocket> open(); // in the calling thread's current netns

  // The addresses on interface `ifname` in the socket's namespace; nullopt when the
  // namespace has no such interface.
  Result<std::optional<std::vector<Cidr>>> interfaceAddresses(const std::string& ifname);

private:
  explicit RtnlSocket(mnl_socket* s);
  std::unique_ptr<mnl_socket, CDeleter<mnl_socket_close>> sock_;
  std::unique_ptr<char[]> buf_;
};

} // namespace podsteer::nl
