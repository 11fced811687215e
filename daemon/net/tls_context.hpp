// Internal to the two Beast translation units: the client TLS setup both share.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <string>

#include "net/tls_options.hpp"

namespace mdshm::net::detail {

inline std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(const TlsOptions& options,
                                                                          std::string& error) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (options.ca_file.empty())
    ctx->set_default_verify_paths(ec);
  else
    ctx->load_verify_file(options.ca_file, ec);
  if (ec) {
    error = "TLS trust store " + (options.ca_file.empty() ? std::string("(system)") : options.ca_file) +
            ": " + ec.message();
    return nullptr;
  }
  ctx->set_verify_mode(options.verify_peer ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

// SNI (never for IP literals, RFC 6066) and certificate name checking for one connection.
template <class SslStream>
bool prepare_tls_stream(SslStream& stream, const std::string& host, bool verify_peer,
                        std::string& error) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  const bool is_ip = !ec;
  if (!is_ip && !SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) {
    error = "TLS: cannot set SNI host name " + host;
    return false;
  }
  if (verify_peer) stream.set_verify_callback(boost::asio::ssl::host_name_verification(host));
  return true;
}

}  // namespace mdshm::net::detail
