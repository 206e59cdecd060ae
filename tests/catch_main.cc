// The Catch2 main, compiled once into its own library (~13 s for this TU).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
