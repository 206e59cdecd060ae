// The c10d class that ProcessGroupGloo and ProcessGroupNCCL derive from:
// c10d::ProcessGroup up to libtorch 1.13 (Debian's), c10d::Backend from 2.0
// on, where a ProcessGroup wraps per-device backends. Collectives here are
// called on the backend directly, so holding it by this type compiles against
// both. Include after ProcessGroupGloo.hpp (USE_C10D_GLOO defined).
#ifndef CASCADE_MODEL_COLLECTIVE_BACKEND_H_
#define CASCADE_MODEL_COLLECTIVE_BACKEND_H_

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <type_traits>

namespace cascade::model {

using CollectiveBackend =
    std::conditional_t<std::is_base_of_v<c10d::Backend, c10d::ProcessGroupGloo>, c10d::Backend,
                       c10d::ProcessGroup>;

}  // namespace cascade::model

#endif  // CASCADE_MODEL_COLLECTIVE_BACKEND_H_
