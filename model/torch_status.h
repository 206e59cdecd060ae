// Internal to model/: turns exceptions thrown by torch code into a Status at
// the public boundary. Included only by the torch translation units.
#ifndef CASCADE_MODEL_TORCH_STATUS_H_
#define CASCADE_MODEL_TORCH_STATUS_H_

#include <c10/util/Exception.h>

#include <exception>
#include <string>

#include "model/status.h"

namespace cascade::model {

template <typename F>
auto CatchStatus(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const ModelError& e) {
    return e.status();
  } catch (const c10::Error& e) {
    return InternalError(context + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(context + ": " + e.what());
  }
}

}  // namespace cascade::model

#endif  // CASCADE_MODEL_TORCH_STATUS_H_
