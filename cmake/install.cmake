# cmake --install: the programs, the three libraries with their one public header each, a
# CMake package (find_package(pcn CONFIG): pcn::pcn the engine, pcn::dist MPI, pcn::io HDF5)
# and pkg-config files (pcn, pcn-dist, pcn-io). The libraries are static: the package and
# the .pc files carry what they link (OpenBLAS, OpenMP, MPI, parallel HDF5, zlib).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(pcn_mpi PROPERTIES EXPORT_NAME dist)
set_target_properties(pcn_io PROPERTIES EXPORT_NAME io)
foreach(lib pcn pcn_mpi pcn_io)
  target_include_directories(${lib} PUBLIC $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()

install(TARGETS pcn pcn_mpi pcn_io EXPORT pcnTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS pcn_dist pcn_convert RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(PCN_HAVE_CUDA) # loaded at run time from <prefix>/<libdir>, beside <prefix>/bin/pcn_dist
  install(TARGETS pcn_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
target_compile_definitions(pcn PRIVATE PCN_INSTALL_LIBDIR="${CMAKE_INSTALL_LIBDIR}")
install(FILES ${CMAKE_BINARY_DIR}/include/pcn/pcn.h ${CMAKE_BINARY_DIR}/include/pcn_dist/pcn_dist.h
              ${CMAKE_BINARY_DIR}/include/pcn_io/pcn_io.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(PCN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/pcn)
install(EXPORT pcnTargets NAMESPACE pcn:: DESTINATION ${PCN_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/pcnConfig.cmake.in
  ${CMAKE_BINARY_DIR}/pcnConfig.cmake INSTALL_DESTINATION ${PCN_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/pcnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/pcnConfig.cmake ${CMAKE_BINARY_DIR}/pcnConfigVersion.cmake
        DESTINATION ${PCN_CMAKE_DIR})

# pkg-config: what a static link of each library needs after it.
if(OPENBLAS_OPENMP_LIBRARY)
  get_filename_component(PCN_PC_BLAS_DIR ${OPENBLAS_OPENMP_LIBRARY} DIRECTORY)
  set(PCN_PC_BLAS "-L${PCN_PC_BLAS_DIR} -lopenblas")
else()
  set(PCN_PC_BLAS "-lopenblas")
endif()
file(RELATIVE_PATH PCN_PC_UP /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
foreach(pc pcn pcn-dist pcn-io)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${CMAKE_BINARY_DIR}/pkgconfig/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/pkgconfig/${pc}.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
