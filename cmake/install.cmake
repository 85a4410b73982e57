# Install rules: headers, libfastinv.a (+ libfastinv.so with FASTINV_SHARED), the CMake
# package (find_package(fastinv) -> fastinv::fastinv), lib/pkgconfig/fastinv.pc and the
# shipped models and response tables under share/fastinv/. Directories: install_dirs.cmake.
if(NOT FASTINV_INSTALL)
  return()
endif()
include(CMakePackageConfigHelpers)

# The wheel ships the shared library only (the Python module links it too: one copy of the
# code); a plain install ships both.
set(_fastinv_targets)
if(NOT SKBUILD)
  list(APPEND _fastinv_targets fastinv)
endif()
set_target_properties(fastinv PROPERTIES EXPORT_NAME fastinv_static)
if(FASTINV_SHARED)
  # The shared library is the static one's objects, whole (no second compile): every public
  # symbol, C and C++, is in it; OpenMP and libstdc++ become its own run-time dependencies.
  add_library(fastinv_shared SHARED cpp/src/capi/shared_anchor.c)
  set_target_properties(fastinv_shared PROPERTIES OUTPUT_NAME fastinv EXPORT_NAME fastinv_shared LINKER_LANGUAGE CXX)
  if(NOT SKBUILD)  # wheels cannot hold symbolic links: one file there
    set_target_properties(fastinv_shared PROPERTIES VERSION ${PROJECT_VERSION}
                          SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  endif()
  if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.24)
    target_link_libraries(fastinv_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,fastinv>")
  else()
    target_link_libraries(fastinv_shared PRIVATE -Wl,--whole-archive fastinv -Wl,--no-whole-archive)
  endif()
  target_include_directories(fastinv_shared INTERFACE
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/cpp/include> $<INSTALL_INTERFACE:${FASTINV_INSTALL_INCLUDEDIR}>)
  if(FASTINV_WITH_CUDA)
    target_compile_definitions(fastinv_shared INTERFACE FASTINV_HAVE_CUDA=1)
  endif()
  list(APPEND _fastinv_targets fastinv_shared)
endif()
if(FASTINV_WITH_CUDA AND NOT SKBUILD)
  # libfastinv.a needs the device code's archive (and the static CUDA runtime) to link.
  list(APPEND _fastinv_targets fastinv_cuda)
endif()

if(NOT _fastinv_targets)
  return()
endif()
install(TARGETS ${_fastinv_targets} EXPORT fastinvTargets COMPONENT embed
        ARCHIVE DESTINATION ${FASTINV_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${FASTINV_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY cpp/include/fastinv DESTINATION ${FASTINV_INSTALL_INCLUDEDIR} COMPONENT embed
        FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")
install(EXPORT fastinvTargets NAMESPACE fastinv:: DESTINATION ${FASTINV_INSTALL_CMAKEDIR} COMPONENT embed)

set(FASTINV_CONFIG_SHARED ${FASTINV_SHARED})
# Only libfastinv.a passes its dependencies on; libfastinv.so carries them itself.
set(FASTINV_CONFIG_STATIC_OPENMP OFF)
set(FASTINV_CONFIG_STATIC_CUDA OFF)
if(NOT SKBUILD)
  set(FASTINV_CONFIG_STATIC_OPENMP ${OpenMP_CXX_FOUND})
  set(FASTINV_CONFIG_STATIC_CUDA ${FASTINV_WITH_CUDA})
endif()
set(FASTINV_CONFIG_CUDA ${FASTINV_WITH_CUDA})
configure_package_config_file(cmake/fastinvConfig.cmake.in ${PROJECT_BINARY_DIR}/fastinvConfig.cmake
                              INSTALL_DESTINATION ${FASTINV_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fastinvConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fastinvConfig.cmake ${PROJECT_BINARY_DIR}/fastinvConfigVersion.cmake
        DESTINATION ${FASTINV_INSTALL_CMAKEDIR} COMPONENT embed)

# pkg-config: -lfastinv finds the shared library when there is one; Libs.private lists what
# a static link (pkg-config --static) needs in addition.
set(FASTINV_PC_PRIVATE "-lstdc++ -lm")
foreach(_lib ${CMAKE_DL_LIBS})
  string(APPEND FASTINV_PC_PRIVATE " -l${_lib}")
endforeach()
if(OpenMP_CXX_FOUND)
  string(PREPEND FASTINV_PC_PRIVATE "${OpenMP_CXX_FLAGS} ")
endif()
# Relocatable: the prefix is found from the .pc file's own place, so `cmake --install
# --prefix P` and a moved tree both work.
string(REGEX REPLACE "[^/]+" ".." FASTINV_PC_UP "${FASTINV_INSTALL_PKGCONFIGDIR}")
configure_file(cmake/fastinv.pc.in ${PROJECT_BINARY_DIR}/fastinv.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fastinv.pc DESTINATION ${FASTINV_INSTALL_PKGCONFIGDIR} COMPONENT embed)

if(NOT SKBUILD)
  install(FILES
    python/fastinv/data/deepem.safetensors python/fastinv/data/deepem.safetensors.json
    python/fastinv/data/deepem21.safetensors python/fastinv/data/deepem21.safetensors.json
    python/fastinv/data/stokes_hinode.safetensors python/fastinv/data/stokes_hinode.safetensors.json
    python/fastinv/data/stokes_visp.safetensors python/fastinv/data/stokes_visp.safetensors.json
    python/fastinv/data/aia_v10_eve.csv python/fastinv/data/aia_v10_eve_noblend.csv python/fastinv/data/aia_v9_eve.csv
    python/fastinv/data/README.md
    DESTINATION ${FASTINV_INSTALL_DATADIR} COMPONENT embed)
endif()
