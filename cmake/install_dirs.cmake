# Where `cmake --install` puts each part. A plain build uses the GNU layout under the prefix
# (include/, lib/, lib/cmake/fastinv/, lib/pkgconfig/, share/fastinv/). The Python wheel
# (scikit-build-core, SKBUILD) puts headers and libraries inside the package, beside _core
# (fastinv/include, fastinv/lib, ...), and ships no second copy of the data: the package's
# own fastinv/data/ is where the library looks (see cpp/src/data_dir.cpp).
include(GNUInstallDirs)
if(SKBUILD)
  set(FASTINV_INSTALL_INCLUDEDIR fastinv/include)
  set(FASTINV_INSTALL_LIBDIR fastinv/lib)
else()
  set(FASTINV_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
  set(FASTINV_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
endif()
set(FASTINV_INSTALL_CMAKEDIR ${FASTINV_INSTALL_LIBDIR}/cmake/fastinv)
set(FASTINV_INSTALL_PKGCONFIGDIR ${FASTINV_INSTALL_LIBDIR}/pkgconfig)
if(SKBUILD)
  set(FASTINV_INSTALL_DATADIR fastinv/data)
else()
  set(FASTINV_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/fastinv)
endif()
