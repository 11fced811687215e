// mdshm client — header-only. Include this one header; link nothing (Threads only).
//
//   mdshm::Series        one series, mapped read-only: latest(), last_n(), read_since(),
//                        closed_view() (zero-copy), wait(), freshness, writer liveness
//   mdshm::Subscription  a named consumer with a cursor, visible to operators (`mdshm show`)
//   mdshm::Universal     the five series together as one snapshot
//
// docs/LAYOUT.md describes the bytes; this library is one reader of them.
#pragma once

#include "mdshm/layout.hpp"
#include "mdshm/registry.hpp"
#include "mdshm/result.hpp"
#include "mdshm/series.hpp"
#include "mdshm/universal.hpp"
