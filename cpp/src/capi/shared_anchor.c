/* libfastinv.so is built from the objects of libfastinv.a (whole archive, see
   cmake/install.cmake); CMake needs at least one source of its own for a library target. */
typedef int fastinv_shared_anchor;
