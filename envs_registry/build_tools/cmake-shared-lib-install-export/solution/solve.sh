#!/bin/bash
set -euo pipefail
cd /app/geokit
# a previous in-source configure may have left a generated header in the source tree
rm -f lib/include/geo/version.h

cat > CMakeLists.txt <<'CM'
cmake_minimum_required(VERSION 3.16)
project(geokit VERSION 2.1.0 LANGUAGES C)

set(CMAKE_C_STANDARD 99)
set(CMAKE_C_STANDARD_REQUIRED ON)

include(GNUInstallDirs)
set(CMAKE_INSTALL_LIBDIR lib)

# enable_testing() must run before add_test() is called in the subdirectories
enable_testing()

add_subdirectory(lib)
add_subdirectory(app)
add_subdirectory(tests)
CM

cat > lib/CMakeLists.txt <<'CM'
include(CMakePackageConfigHelpers)

# generated header goes to the build tree, never into the sources
configure_file(include/geo/version.h.in ${CMAKE_CURRENT_BINARY_DIR}/include/geo/version.h @ONLY)

add_library(geo SHARED
    src/distance.c
    src/polygon.c
    src/version.c
)
add_library(geo::geo ALIAS geo)
set_target_properties(geo PROPERTIES
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    EXPORT_NAME geo
)
target_include_directories(geo
    PUBLIC
        $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
        $<BUILD_INTERFACE:${CMAKE_CURRENT_BINARY_DIR}/include>
        $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE
        src
)
target_link_libraries(geo PRIVATE m)

install(TARGETS geo EXPORT geoTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
)
install(FILES include/geo/geo.h ${CMAKE_CURRENT_BINARY_DIR}/include/geo/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/geo)
install(EXPORT geoTargets NAMESPACE geo:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/geo)

file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/geoConfig.cmake.in
"@PACKAGE_INIT@\ninclude(\"\${CMAKE_CURRENT_LIST_DIR}/geoTargets.cmake\")\ncheck_required_components(geo)\n")
configure_package_config_file(${CMAKE_CURRENT_BINARY_DIR}/geoConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/geoConfig.cmake
    INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/geo)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/geoConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/geoConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/geoConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/geo)
CM

cat > app/CMakeLists.txt <<'CM'
add_executable(geocalc geocalc.c)
target_link_libraries(geocalc PRIVATE geo::geo)
set_target_properties(geocalc PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")

install(TARGETS geocalc RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
CM

cat > tests/CMakeLists.txt <<'CM'
add_executable(test_geo test_geo.c)
target_link_libraries(test_geo PRIVATE geo::geo m)
add_test(NAME geo_unit COMMAND test_geo)
CM

rm -rf /app/build /app/dist
cmake -S /app/geokit -B /app/build -DCMAKE_INSTALL_PREFIX=/app/dist
cmake --build /app/build -j4
ctest --test-dir /app/build --output-on-failure
cmake --install /app/build
env -u LD_LIBRARY_PATH /app/dist/bin/geocalc --version
