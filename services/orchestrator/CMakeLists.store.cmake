# Job store (SQLite) and the HTML report; no gRPC, no torch.
find_package(SQLite3 REQUIRED)
# FindSQLite3 makes a directory-scoped imported target; promote it so targets
# in other directories that link orchestrator_store resolve it too.
get_target_property(_cascade_sqlite_global SQLite::SQLite3 IMPORTED_GLOBAL)
if(NOT _cascade_sqlite_global)
  set_target_properties(SQLite::SQLite3 PROPERTIES IMPORTED_GLOBAL TRUE)
endif()

cascade_library(orchestrator_store
  SRCS ${CMAKE_CURRENT_LIST_DIR}/job_store.cc
  DEPS common_json absl::status absl::statusor absl::strings absl::str_format
       absl::synchronization absl::time
  PRIVATE_DEPS SQLite::SQLite3)

cascade_library(orchestrator_report
  SRCS ${CMAKE_CURRENT_LIST_DIR}/report.cc
  DEPS orchestrator_store absl::strings absl::str_format)

cascade_test(orchestrator_store_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/job_store_test.cc
  DEPS orchestrator_store SQLite::SQLite3
  LABELS orchestrator)

cascade_test(orchestrator_report_test
  SRCS ${CMAKE_CURRENT_LIST_DIR}/report_test.cc
  DEPS orchestrator_report
  LABELS orchestrator)
