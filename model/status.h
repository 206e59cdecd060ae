// Error values for the model runtime.
//
// model/ depends on libtorch and the standard library only (so it builds on any
// machine with a PyTorch install, see scripts/gpu-check.sh), which rules out
// absl::Status here. Status and StatusOr mirror the parts of the absl API the
// callers use (ok(), message(), value(), operator*), so an adapter converts them
// with one line at the service boundary:
//   absl::Status(static_cast<absl::StatusCode>(s.code()), s.message())
// The codes use absl's numbering for exactly that reason.
//
// Inside the torch translation units failures are thrown (torch itself throws
// c10::Error); every public entry point catches and returns a Status, so no
// exception crosses the model/ API.
#ifndef CASCADE_MODEL_STATUS_H_
#define CASCADE_MODEL_STATUS_H_

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace cascade::model {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 3,
  kNotFound = 5,
  kFailedPrecondition = 9,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kDataLoss = 15,
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFoundError(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status FailedPreconditionError(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status UnimplementedError(std::string m) {
  return Status(StatusCode::kUnimplemented, std::move(m));
}
inline Status InternalError(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }
inline Status DataLossError(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_;
}

// Thrown inside model/ translation units and turned back into a Status at the
// public boundary (see CatchStatus in the .cc files).
class ModelError : public std::runtime_error {
 public:
  explicit ModelError(Status status)
      : std::runtime_error(status.message()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit like absl
    if (status_.ok()) status_ = InternalError("StatusOr constructed from an OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit like absl

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    Check();
    return *value_;
  }
  const T& value() const& {
    Check();
    return *value_;
  }
  T&& value() && {
    Check();
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Check() const {
    if (!status_.ok()) throw ModelError(status_);
  }
  Status status_;
  std::optional<T> value_;
};

// Unwraps a StatusOr inside model/ code that reports failures by throwing.
template <typename T>
T ValueOrThrow(StatusOr<T> s) {
  if (!s.ok()) throw ModelError(s.status());
  return std::move(s).value();
}
inline void ThrowIfError(const Status& s) {
  if (!s.ok()) throw ModelError(s);
}

}  // namespace cascade::model

#endif  // CASCADE_MODEL_STATUS_H_
