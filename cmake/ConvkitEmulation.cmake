# The CPU build of CUDA kernel sources (issue #12): each .cu is compiled by the C++ compiler
# through a generated one-line wrapper that includes emu/device_api.h first. A wrapper rather
# than LANGUAGE CXX on the .cu itself, which would take the file away from nvcc in the real
# build. Appends the wrappers to the list named by out_var.
function(convkit_emu_wrap_kernels out_var)
  set(wrappers ${${out_var}})
  foreach(source IN LISTS ARGN)
    get_filename_component(CONVKIT_EMU_SOURCE "${source}" ABSOLUTE BASE_DIR "${PROJECT_SOURCE_DIR}")
    file(RELATIVE_PATH CONVKIT_EMU_SOURCE_NAME "${PROJECT_SOURCE_DIR}" "${CONVKIT_EMU_SOURCE}")
    string(MAKE_C_IDENTIFIER "${CONVKIT_EMU_SOURCE_NAME}" stem)
    set(wrapper "${PROJECT_BINARY_DIR}/emu-kernels/${stem}.cpp")
    configure_file("${PROJECT_SOURCE_DIR}/cmake/emu_kernel_wrapper.cpp.in" "${wrapper}" @ONLY)
    set_source_files_properties("${wrapper}" PROPERTIES OBJECT_DEPENDS "${CONVKIT_EMU_SOURCE}")
    list(APPEND wrappers "${wrapper}")
  endforeach()
  set(${out_var} ${wrappers} PARENT_SCOPE)
endfunction()

# Options of a target with CPU-built kernel sources: the emulation macro, the library's include
# paths, and no contraction of a*b+c into an FMA, so results do not depend on the host CPU's
# instruction set. The wrappers themselves get the library's warnings (-Werror with
# CONVKIT_WERROR), as the same files do under nvcc.
function(convkit_emu_kernel_options target)
  target_compile_definitions(${target} PRIVATE CONVKIT_CPU_EMULATION=1)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}
                                               ${PROJECT_BINARY_DIR}/generated)
  target_compile_options(${target} PRIVATE -ffp-contract=off -fdata-sections)
  get_target_property(sources ${target} SOURCES)
  list(FILTER sources INCLUDE REGEX "/emu-kernels/")
  set_source_files_properties(${sources} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${CONVKIT_WARNINGS}")
endfunction()

# A program that runs CPU-built kernels links with this: it gathers their __shared__ variables
# (cmake/emu_shared_memory.ld says why a linker script is needed).
function(convkit_emu_link_options target)
  target_link_options(${target} PRIVATE "-Wl,-T,${PROJECT_SOURCE_DIR}/cmake/emu_shared_memory.ld")
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${PROJECT_SOURCE_DIR}/cmake/emu_shared_memory.ld")
endfunction()
