# One function per target kind, so every target gets the same warnings,
# include root and output directory.
#
#   cascade_library(NAME SRCS a.cc ... DEPS dep ... [PRIVATE_DEPS dep ...])
#   cascade_binary(NAME SRCS main.cc ... DEPS ...)      -> build/bin/NAME
#   cascade_test(NAME SRCS x_test.cc ... DEPS ...)      -> Catch2 cases registered with CTest

set(CASCADE_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)

function(cascade_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CASCADE_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

function(cascade_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CASCADE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
endfunction()

# The Catch2 main lives in its own library (tests/catch_main.cc): it costs ~13 s
# to compile and is built once for every test binary.
function(cascade_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${CASCADE_WARNINGS})
  target_compile_definitions(${name} PRIVATE
    CASCADE_TESTDATA_DIR="${CASCADE_TESTDATA_DIR}"
    CASCADE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    CASCADE_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")
  target_link_libraries(${name} PRIVATE catch_main ${ARG_DEPS})
  set(labels ${ARG_LABELS})
  if(NOT labels)
    set(labels unit)
  endif()
  catch_discover_tests(${name} TEST_PREFIX "${name}: " PROPERTIES LABELS "${labels}"
                       DISCOVERY_TIMEOUT 60)
endfunction()
