# Helpers that give every winnow target the same flags, precompiled header and dependencies.

set(WINNOW_WARNINGS -Wall -Wextra)

# One precompiled header target; every other target reuses it (REUSE_FROM keeps it compiled once).
add_library(winnow_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/pch_anchor.cpp)
target_link_libraries(winnow_pch PUBLIC ${TORCH_LIBRARIES})
target_compile_options(winnow_pch PRIVATE ${WINNOW_WARNINGS})
if(WINNOW_USE_PCH)
  target_precompile_headers(winnow_pch PRIVATE ${CMAKE_CURRENT_LIST_DIR}/winnow_pch.h)
endif()

# winnow_library(name SOURCES ... DEPS ...): a static library rooted at the repository top.
function(winnow_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                            $<INSTALL_INTERFACE:include/winnow> $<INSTALL_INTERFACE:include>)
  target_link_libraries(${name} PUBLIC ${TORCH_LIBRARIES} ${ARG_DEPS})
  target_compile_options(${name} PRIVATE ${WINNOW_WARNINGS})
  if(WINNOW_USE_PCH)
    target_precompile_headers(${name} REUSE_FROM winnow_pch)
  endif()
endfunction()

# winnow_executable(name SOURCES ... DEPS ...)
function(winnow_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${TORCH_LIBRARIES} ${ARG_DEPS})
  # The allocator (WINNOW_ALLOCATOR): linked even though no symbol names it, so its malloc wins.
  if(WINNOW_ALLOCATOR_LIBRARY)
    target_link_libraries(${name} PRIVATE "-Wl,--no-as-needed" ${WINNOW_ALLOCATOR_LIBRARY} "-Wl,--as-needed")
  endif()
  target_compile_options(${name} PRIVATE ${WINNOW_WARNINGS})
  if(WINNOW_USE_PCH)
    target_precompile_headers(${name} REUSE_FROM winnow_pch)
  endif()
endfunction()

# winnow_test(name SOURCES ... DEPS ...): one GoogleTest executable, registered with CTest.
function(winnow_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  winnow_executable(${name} SOURCES ${ARG_SOURCES} DEPS ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# winnow_mpi_test(name EXECUTABLE exe NP n [ARGS ...]): runs an already defined test executable
# under mpirun with n ranks. `timeout` ends a hung job (a hang must fail, never block CI).
set(WINNOW_MPIRUN_FLAGS --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader
    --mca btl_vader_single_copy_mechanism none)
function(winnow_mpi_test name)
  cmake_parse_arguments(ARG "" "EXECUTABLE;NP;TIMEOUT" "ARGS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 180)
  endif()
  add_test(NAME ${name}
           COMMAND timeout --kill-after=10 ${ARG_TIMEOUT} ${MPIEXEC_EXECUTABLE} ${WINNOW_MPIRUN_FLAGS}
                   -np ${ARG_NP} $<TARGET_FILE:${ARG_EXECUTABLE}> ${ARG_ARGS})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "mpi"
                       ENVIRONMENT "OMP_NUM_THREADS=1")
endfunction()
